import type { OpContext } from '../op-context.js';

/**
 * A lifecycle operation as a list of steps, each able to undo itself. Steps
 * run in order, each reported as a progress stage; when one fails, it and
 * the steps before it are rolled back in reverse and the original error is
 * rethrown. The failed step is rolled back too, since it may have done part
 * of its work (a disk written before the other ran out of space), so a
 * rollback MUST be idempotent and cope with a run that stopped anywhere. A
 * rollback that fails is logged, and the others still run.
 */
export interface Step {
  stage: string;
  detail: string;
  run: () => Promise<void>;
  rollback?: () => Promise<void>;
}

export async function runSteps(steps: readonly Step[], ctx: OpContext): Promise<void> {
  const done: Step[] = [];
  try {
    for (const step of steps) {
      ctx.signal.throwIfAborted();
      ctx.progress(step.stage, step.detail);
      done.push(step);
      await step.run();
    }
  } catch (error) {
    for (const step of done.reverse()) {
      if (step.rollback === undefined) continue;
      try {
        await step.rollback();
      } catch (rollbackError) {
        ctx.log.warn({ stage: step.stage, err: rollbackError }, 'rollback step failed');
      }
    }
    throw error;
  }
}
