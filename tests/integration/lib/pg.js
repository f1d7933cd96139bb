// A throwaway PostgreSQL cluster for integration tests and benchmarks, by
// tests/lib/pg.sh (the script the C tests use too): initdb + pg_ctl as a
// non-root user, a free 127.0.0.1 port, everything under one temporary
// directory.  Queries go through psql and come back as JSON rows.
import { execFile, execFileSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const here = path.dirname(fileURLToPath(import.meta.url));
const PG_SH = path.resolve(here, '..', '..', 'lib', 'pg.sh');

function sh(cmd, dir, env = {}) {
  return execFileSync('sh', [PG_SH, cmd, dir], { env: { ...process.env, ...env }, stdio: ['ignore', 'pipe', 'pipe'] })
    .toString().trim();
}

// The same without blocking the event loop (load keeps flowing meanwhile).
function shAsync(cmd, dir, env = {}) {
  return new Promise((resolve, reject) => {
    execFile('sh', [PG_SH, cmd, dir], { env: { ...process.env, ...env } },
      (err, stdout, stderr) => (err ? reject(new Error(`pg.sh ${cmd}: ${stderr || err.message}`)) : resolve(stdout.trim())));
  });
}

// Starts a cluster; throws (the test fails) when PostgreSQL cannot start.
// { url, dir, query(sql), restart(), stop(), kill(), start(), destroy() }
export function startPostgres({ fsync = false } = {}) {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'perfbot-pg-'));
  const env = fsync ? { PG_FSYNC: 'on' } : {};
  let url;
  try {
    url = sh('start', dir, env);
  } catch (e) {
    throw new Error(`PostgreSQL did not start (tests/lib/pg.sh): ${e.stderr || e.message}`);
  }
  const cluster = {
    url,
    dir,
    // rows of a query as objects
    query(sql) {
      return new Promise((resolve, reject) => {
        execFile('psql', ['-X', '-q', '-A', '-t', '-v', 'ON_ERROR_STOP=1', '-d', url, '-c',
          `SELECT coalesce(json_agg(t), '[]'::json) FROM (${sql}) t`], { maxBuffer: 256 << 20 },
        (err, stdout, stderr) => (err ? reject(new Error(`psql: ${stderr || err.message}`)) : resolve(JSON.parse(stdout))));
      });
    },
    // each resolves when done; the event loop keeps running meanwhile
    stop: () => shAsync('stop', dir),             // fast shutdown
    kill: () => shAsync('kill', dir),             // immediate: like a crash
    start: () => shAsync('restart', dir, env),    // (re)start on the same port
    restart: () => shAsync('restart', dir, env),
    destroy() {
      try { sh('kill', dir); } catch { /* already down */ }
      fs.rmSync(dir, { recursive: true, force: true });
    },
  };
  return cluster;
}
