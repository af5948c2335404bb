import { formatProgressCounts } from '../cli/render/progress.js';
import type { ProgressEvent } from '../rpc/methods.js';

/**
 * A long request's stages as the CLI's live progress shows them
 * (src/cli/render/progress.ts): a ✓ line per finished stage and one line for
 * the current stage, its detail and counts. A new stage begins when the
 * event's stage id changes.
 * The counts are formatted by the CLI's own formatProgressCounts; the stage
 * bookkeeping is kept as state here because the screen redraws from state,
 * where ProgressRenderer writes lines as events come.
 */
export interface ProgressStages {
  done: readonly string[];
  current: { stage: string; line: string } | null;
}

export const noStages: ProgressStages = { done: [], current: null };

export function applyProgress(stages: ProgressStages, event: ProgressEvent): ProgressStages {
  const done = stages.current !== null && stages.current.stage !== event.stage ? [...stages.done, stages.current.line] : stages.done;
  return { done, current: { stage: event.stage, line: `${event.detail}${formatProgressCounts(event)}` } };
}

/** The request answered: its last stage is done too. */
export function finishStages(stages: ProgressStages): ProgressStages {
  return stages.current === null ? stages : { done: [...stages.done, stages.current.line], current: null };
}
