// Serves bare repositories over git's smart HTTP protocol for pr/ tests and
// bench/pr: a Node HTTP server that runs the real `git http-backend` as a
// CGI program, behind Basic auth like GitHub (user x-access-token, password
// the token).  Repositories are <root>/<owner>/<name>.git, served at
// http://127.0.0.1:<port>/git/<owner>/<name>.git.
//
//   node pr-git-server.mjs --root DIR --token TOKEN [--port 0] [--detached]
//
// Prints "listening <port>" on stdout once ready; stops on SIGTERM or, unless
// --detached, when stdin closes (so a crashed parent never leaves it running).
import http from 'node:http';
import { spawn } from 'node:child_process';

function arg(name, dflt) {
  const i = process.argv.indexOf(name);
  return i > 0 && i + 1 < process.argv.length ? process.argv[i + 1] : dflt;
}

const root = arg('--root');
const token = arg('--token', 'test-token');
const port = Number(arg('--port', '0'));
if (!root) {
  process.stderr.write('usage: pr-git-server.js --root DIR --token TOKEN [--port N]\n');
  process.exit(2);
}

let requests = 0;

function authorized(req) {
  const h = req.headers.authorization || '';
  if (!h.startsWith('Basic ')) return false;
  const [user, pass] = Buffer.from(h.slice(6), 'base64').toString().split(':');
  return user === 'x-access-token' && pass === token;
}

const server = http.createServer((req, res) => {
  requests++;
  const url = new URL(req.url, 'http://127.0.0.1');
  if (url.pathname === '/stats') {
    res.end(JSON.stringify({ requests }));
    return;
  }
  if (!url.pathname.startsWith('/git/')) {
    res.writeHead(404).end('not found\n');
    return;
  }
  if (!authorized(req)) {
    res.writeHead(401, { 'WWW-Authenticate': 'Basic realm="perfbot-test"' }).end('auth required\n');
    return;
  }
  const env = {
    PATH: process.env.PATH,
    GIT_PROJECT_ROOT: root,
    GIT_HTTP_EXPORT_ALL: '1',
    REQUEST_METHOD: req.method,
    PATH_INFO: decodeURIComponent(url.pathname.slice(4)),
    QUERY_STRING: url.search.slice(1),
    CONTENT_TYPE: req.headers['content-type'] || '',
    REMOTE_USER: 'x-access-token',
    REMOTE_ADDR: '127.0.0.1',
    GIT_HTTP_MAX_REQUEST_BUFFER: '100M',
  };
  if (req.headers['content-length']) env.CONTENT_LENGTH = req.headers['content-length'];
  if (req.headers['content-encoding']) env.HTTP_CONTENT_ENCODING = req.headers['content-encoding'];
  if (req.headers['git-protocol']) env.GIT_PROTOCOL = req.headers['git-protocol'];
  const cgi = spawn('git', ['http-backend'], { env });
  req.pipe(cgi.stdin);
  cgi.stdin.on('error', () => {});
  let head = Buffer.alloc(0);
  let headersDone = false;
  cgi.stdout.on('data', (chunk) => {
    if (headersDone) {
      res.write(chunk);
      return;
    }
    head = Buffer.concat([head, chunk]);
    let sep = head.indexOf('\r\n\r\n');
    let sepLen = 4;
    if (sep < 0) {
      sep = head.indexOf('\n\n');
      sepLen = 2;
    }
    if (sep < 0) return;
    headersDone = true;
    let status = 200;
    const headers = {};
    for (const line of head.slice(0, sep).toString().split(/\r?\n/)) {
      const i = line.indexOf(':');
      if (i < 0) continue;
      const k = line.slice(0, i).trim();
      const v = line.slice(i + 1).trim();
      if (k.toLowerCase() === 'status') status = parseInt(v, 10);
      else headers[k] = v;
    }
    res.writeHead(status, headers);
    res.write(head.slice(sep + sepLen));
  });
  cgi.stderr.on('data', (d) => process.stderr.write(d));
  cgi.on('close', () => {
    if (!headersDone) res.writeHead(500);
    res.end();
  });
});

server.listen(port, '127.0.0.1', () => {
  process.stdout.write(`listening ${server.address().port}\n`);
});
process.on('SIGTERM', () => process.exit(0));
if (!process.argv.includes('--detached')) {
  process.stdin.on('end', () => process.exit(0));
  process.stdin.resume();
}
