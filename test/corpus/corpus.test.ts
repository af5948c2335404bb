import assert from 'node:assert/strict';
import { after, before, describe, test, type TestContext } from 'node:test';
import { isDeepStrictEqual } from 'node:util';

import { WIRE_CODES, type SerializedError } from '../../src/rpc/errors.js';
import { bytesOf, expand, loadCases, type CliCase, type ConfigCase, type KnownDefect, type RpcCase, type RpcExpect } from './cases.js';
import { CorpusWorld } from './corpus-world.js';
import { exchange, type Exchange } from './raw-rpc.js';

/**
 * The bad-input corpus (test/corpus/cases/*.json): every case must fail with
 * the error code it states, the daemon must keep serving afterwards (same
 * pid: the CLI's auto-start would hide a crash), no request may be left in
 * flight, and the store and the state and runtime dirs must be exactly as
 * before. No case may boot a VM or download anything (see CorpusWorld).
 */

/** An error message longer than this echoes input back instead of describing it. */
const MAX_MESSAGE = 1000;

const files = loadCases();
const daemonFiles = files.filter((f) => f.kind !== 'config');
const configFiles = files.filter((f) => f.kind === 'config');

let corpus: CorpusWorld;
let daemonPid: number;

/** `observed` must be what the case expects; for a known defect, exactly the recorded wrong outcome (so a fix is noticed). */
function judge<T>(t: TestContext, expected: T, observed: unknown, defect: KnownDefect<T> | undefined): void {
  if (defect === undefined) {
    assert.deepEqual(observed, expected);
    return;
  }
  if (isDeepStrictEqual(observed, expected)) assert.fail(`fixed: this case now gets ${JSON.stringify(expected)}; remove its "defect" entry`);
  assert.deepEqual(observed, defect.observed, `known defect (fix: ${defect.fix}) changed`);
  t.diagnostic(`known defect, expected ${JSON.stringify(expected)}: ${defect.fix}`);
}

/** The error a `--json` CLI run printed, checked for the exit status that goes with its code. */
async function cliError(argv: readonly string[]): Promise<SerializedError> {
  const result = await corpus.world.run([...argv, '--json']);
  let parsed: { error?: SerializedError };
  try {
    parsed = JSON.parse(result.stdout) as { error?: SerializedError };
  } catch {
    throw new Error(`stdout is not one JSON document (exit ${result.code}): ${result.stdout}\nstderr: ${result.stderr}`);
  }
  if (parsed.error === undefined) throw new Error(`banger ${argv.join(' ')} succeeded: ${result.stdout}`);
  assert.equal(result.code, parsed.error.code === 'ERR_USAGE' ? 2 : 1, 'exit status');
  return parsed.error;
}

async function runCli(t: TestContext, c: CliCase): Promise<void> {
  const error = await cliError(c.argv.map((arg) => String(expand(arg))));
  judge(t, { code: c.code }, { code: error.code, ...long(error.message) }, c.defect);
  if (c.message !== undefined && c.defect === undefined)
    assert.ok(error.message.includes(c.message), `message ${JSON.stringify(error.message)} mentions ${c.message}`);
}

/** `{longMessage: true}` for a message that echoes input back instead of describing it. */
function long(message: string): { longMessage?: true } {
  return message.length > MAX_MESSAGE ? { longMessage: true } : {};
}

/** What came back, in the terms cases state it. */
function outcomeOf(ex: Exchange): RpcExpect | { unexpected: unknown } {
  if (ex.replies.length === 0) return { noReply: true };
  const [reply] = ex.replies;
  if (ex.replies.length > 1 || reply?.error === undefined) return { unexpected: JSON.stringify(ex.replies).slice(0, 2000) };
  const code = reply.error.data?.code;
  if (code === undefined) return { rpcCode: reply.error.code, ...long(reply.error.message) };
  assert.equal(reply.error.code, WIRE_CODES[code as keyof typeof WIRE_CODES], `wire code of ${code}`);
  return { code: code as keyof typeof WIRE_CODES, ...long(reply.error.message) };
}

async function runRpc(t: TestContext, c: RpcCase): Promise<void> {
  const then = c.then ?? 'probe';
  const ex = await exchange(corpus.socketPath, bytesOf(c.send), then, async () => {
    await corpus.inFlight(2);
  });
  if (then === 'probe') assert.ok(ex.probeAnswered, 'a ping sent after the case on the same connection is answered');
  if (then === 'dropped') assert.ok(ex.closed && !ex.probeAnswered, 'the daemon closed the connection without reading on');
  if (then === 'probe' || then === 'dropped' || then === 'hang-up') judge(t, c.expect, outcomeOf(ex), c.defect);
  if (c.message !== undefined && c.defect === undefined) {
    const message = ex.replies[0]?.error?.message ?? '';
    assert.ok(message.includes(c.message), `message ${JSON.stringify(message)} mentions ${c.message}`);
  }
}

async function runConfig(c: ConfigCase): Promise<void> {
  if (c.directory === true) corpus.configAsDirectory();
  else corpus.writeConfig(typeof c.toml === 'string' ? c.toml : (c.toml ?? []).map((piece) => String(expand(piece))).join(''));
  const error = await cliError(['vm', 'list']);
  assert.equal(error.code, c.code, error.message);
  if (c.key !== undefined) assert.ok(error.message.includes(c.key), `message ${JSON.stringify(error.message)} names ${c.key}`);
  assert.equal(await corpus.ping(), undefined, 'no daemon runs with this config');
}

describe('bad-input corpus', () => {
  before(async () => {
    corpus = CorpusWorld.create();
    daemonPid = (await corpus.world.json<{ pid: number }>(['daemon', 'start'])).pid;
  });
  after(() => {
    corpus.close();
  });

  for (const file of daemonFiles) {
    describe(`${file.category}: ${file.about}`, () => {
      for (const c of file.cases) {
        test(c.id, async (t) => {
          const before = corpus.snapshot();
          if (file.kind === 'cli') await runCli(t, c as CliCase);
          else await runRpc(t, c as RpcCase);
          const ping = await corpus.settled();
          assert.equal(ping.pid, daemonPid, 'the daemon is the one that started (it did not crash and get restarted)');
          assert.equal(corpus.snapshot(), before, 'store and state dir unchanged');
        });
      }
    });
  }

  describe('config.toml: the daemon refuses to start, and says why', () => {
    before(async () => {
      await corpus.world.json(['daemon', 'stop']);
    });
    after(async () => {
      corpus.writeConfig();
      await corpus.world.json(['daemon', 'start']);
      assert.notEqual(await corpus.ping(), undefined, 'with its config fixed, the daemon starts and serves');
    });
    for (const file of configFiles) {
      describe(`${file.category}: ${file.about}`, () => {
        for (const c of file.cases) {
          test(c.id, async () => {
            const before = corpus.snapshot();
            await runConfig(c);
            assert.equal(corpus.snapshot(), before, 'store and state dir unchanged');
          });
        }
      });
    }
  });

  test('no VM was started and no VMM runs', () => {
    assert.deepEqual(corpus.world.vmmPids(), []);
    assert.deepEqual(
      corpus.world.logLines().filter((line) => line.msg === 'vmm started'),
      [],
    );
  });
});
