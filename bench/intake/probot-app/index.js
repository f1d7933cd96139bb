// Baseline for perfbot's intake benchmark: the smallest Probot 14 app that
// receives signed `push` deliveries. Probot verifies the signature, parses the
// payload and runs this (empty) handler before it answers.
export default (app) => {
  app.on("push", async () => {});
};
