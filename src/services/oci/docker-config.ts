/**
 * Credentials as docker finds them in config.json: a per-registry
 * `credHelpers.<host>` program, else the `credsStore` program, else the
 * inline `auths.<host>` entry. A helper is `docker-credential-<name>`, run as
 * `docker-credential-<name> get` with the server URL on stdin, printing
 * `{"ServerURL","Username","Secret"}`; "credentials not found" means
 * anonymous access. A `<token>` username (an OAuth2 identity token) is not
 * supported yet (TODO) and counts as no credentials.
 */
import { execFile } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';

import { BangerError } from '../../rpc/errors.js';
import { type CredentialLookup, type Credentials, credentialsFromDockerConfig } from './auth.js';
import { DOCKER_HUB } from './reference.js';

/** Runs `program get` with `input` on stdin and resolves its stdout; rejects with its failure (stderr in the message). */
export type HelperRunner = (program: string, input: string) => Promise<string>;

const HELPER_TIMEOUT_MS = 30_000;

/** The default runner: the program from PATH (of `env`, default this process's). */
export function execHelper(env: NodeJS.ProcessEnv = process.env): HelperRunner {
  return (program, input) =>
    new Promise((resolve, reject) => {
      const child = execFile(program, ['get'], { env, timeout: HELPER_TIMEOUT_MS, maxBuffer: 1024 * 1024 }, (error, stdout, stderr) => {
        if (error === null) resolve(stdout);
        else reject(new Error(`${error.message.split('\n')[0] ?? ''} ${stdout} ${stderr}`.trim(), { cause: error }));
      });
      child.stdin?.end(input);
    });
}

function helperFor(config: unknown, registry: string): string | undefined {
  if (typeof config !== 'object' || config === null) return undefined;
  const { credHelpers, credsStore } = config as { credHelpers?: unknown; credsStore?: unknown };
  if (typeof credHelpers === 'object' && credHelpers !== null) {
    const named = (credHelpers as Record<string, unknown>)[registry];
    if (typeof named === 'string' && named !== '') return named;
  }
  return typeof credsStore === 'string' && credsStore !== '' ? credsStore : undefined;
}

/** A credential lookup over a parsed docker config.json, using helpers the way docker does. */
export function dockerConfigLookup(config: unknown, runHelper: HelperRunner = execHelper()): CredentialLookup {
  return async (registry) => {
    const helper = helperFor(config, registry);
    if (helper === undefined) return credentialsFromDockerConfig(config, registry);
    // Docker stores Hub credentials under its v1 index URL; others under the bare host.
    const serverUrl = registry === DOCKER_HUB ? 'https://index.docker.io/v1/' : registry;
    const program = `docker-credential-${helper}`;
    let output: string;
    try {
      output = await runHelper(program, serverUrl);
    } catch (error) {
      const message = error instanceof Error ? error.message : String(error);
      if (/credentials not found/i.test(message)) return credentialsFromDockerConfig(config, registry);
      throw new BangerError('ERR_REGISTRY_AUTH', `the docker credential helper ${program} failed for ${registry}: ${message}`, {
        cause: error,
        hint: `check that ${program} is installed and unlocked, or remove it from ~/.docker/config.json`,
      });
    }
    let parsed: unknown;
    try {
      parsed = JSON.parse(output);
    } catch {
      throw new BangerError('ERR_REGISTRY_AUTH', `the docker credential helper ${program} printed something that is not JSON`);
    }
    const { Username: username, Secret: secret } = (parsed ?? {}) as { Username?: unknown; Secret?: unknown };
    if (typeof username !== 'string' || typeof secret !== 'string' || username === '' || username === '<token>') return undefined;
    const credentials: Credentials = { username, password: secret };
    return credentials;
  };
}

/**
 * The parsed docker config.json, as docker finds it: `$DOCKER_CONFIG/config.json`,
 * else `~/.docker/config.json`; undefined when there is none. Read at every
 * pull, so a `docker login` takes effect without restarting the daemon.
 */
export function readDockerConfig(env: NodeJS.ProcessEnv, home: string): unknown {
  const dir = env.DOCKER_CONFIG !== undefined && env.DOCKER_CONFIG !== '' ? env.DOCKER_CONFIG : join(home, '.docker');
  let text: string;
  try {
    text = readFileSync(join(dir, 'config.json'), 'utf8');
  } catch {
    return undefined;
  }
  try {
    return JSON.parse(text) as unknown;
  } catch {
    throw new BangerError('ERR_REGISTRY_AUTH', `${join(dir, 'config.json')} is not valid JSON`, { hint: 'fix or remove it (docker login rewrites it)' });
  }
}
