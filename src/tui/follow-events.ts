import type { TuiActions } from './actions.js';
import { errorStatus, type TuiStore } from './model.js';

/**
 * Feeds the store from the daemon's event stream until `signal` aborts; a
 * stream that fails (daemon gone, subscription refused) marks it lost, with
 * the error in the status line. Never rejects.
 */
export async function followEvents(actions: TuiActions, store: TuiStore, signal: AbortSignal): Promise<void> {
  try {
    await actions.subscribe((event) => {
      store.dispatch({ type: 'event', event });
    }, signal);
  } catch (error) {
    store.dispatch({ type: 'streamLost', status: errorStatus(error) });
  }
}
