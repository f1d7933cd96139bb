/* What perfbot's tools (agent/tools.c) and the Managed Agents built-in
 * toolset (agent/tools_builtin.c) share, private to agent/: tool results
 * in the MCP CallToolResult shape, reading a call's arguments with a
 * failed result naming the bad one, and shell quoting for commands run in
 * the sandbox.  `noun` is what a tool's transport calls its arguments:
 * "argument" over MCP, "input" for the built-in tools. */
#ifndef AGENT_TOOL_RESULT_H
#define AGENT_TOOL_RESULT_H

#include <jansson.h>
#include <stddef.h>

#include "base/buf.h"

/* {content: [{type: "text", text}], isError, structuredContent?} (owned;
 * NULL when out of memory).  text: len bytes from programs and files, bytes
 * that are not UTF-8 become U+FFFD.  structured: stolen, may be NULL. */
json_t *agent_tool_result(const char *text, size_t len, int is_error, json_t *structured);

/* A failed result with a formatted sentence (at most 1 KiB). */
json_t *agent_tool_errorf(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/* 0 and *out (borrowed) when present and a string, or absent and optional
 * (*out NULL); otherwise -1 with a failed result in *err. */
int agent_tool_arg_str(const json_t *in, const char *noun, const char *key, int required, const char **out,
		       json_t **err);

/* An integer (also a whole real) in [min, max]; absent keeps *out.  -1 with
 * a failed result in *err otherwise. */
int agent_tool_arg_int(const json_t *in, const char *noun, const char *key, long long min, long long max,
		       long long *out, json_t **err);

/* Appends s to b as one single-quoted shell word; -1 when out of memory. */
int agent_tool_shell_quote(base_buf *b, const char *s);

#endif
