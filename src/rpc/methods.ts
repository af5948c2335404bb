/**
 * The daemon's RPC surface, declared once. The CLI calls these and the daemon
 * implements them; `Handlers` below makes the compiler insist that the daemon
 * has a handler for every method, and a test checks the same at run time.
 *
 * Params and results are plain JSON. Every method takes named params (an
 * object, possibly empty).
 */

/** A method's name plus phantom types for its params and result. */
export interface Method<P, R> {
  readonly name: string;
  /** Never set; carries the types. */
  readonly _types?: [P, R];
}

function method<P, R>(name: string): Method<P, R> {
  return { name };
}

/** Methods without params take `{}`. */
export type NoParams = Record<string, never>;

export interface PingResult {
  pid: number;
  version: string;
  buildId: string;
  startedAt: string;
  socketPath: string;
  stateDir: string;
  logPath: string;
  /** Requests currently being served, including this ping. */
  inFlight: number;
}

export interface ShutdownResult {
  pid: number;
}

export interface SleepParams {
  ms: number;
}

export interface SleepResult {
  sleptMs: number;
}

export const methods = {
  ping: method<NoParams, PingResult>('daemon.ping'),
  shutdown: method<NoParams, ShutdownResult>('daemon.shutdown'),
  /**
   * Waits `ms` milliseconds or until the request is cancelled. A diagnostic:
   * the integration tests use it to prove that a client going away cancels
   * the work of its requests.
   */
  sleep: method<SleepParams, SleepResult>('debug.sleep'),
} as const;

export type Methods = typeof methods;
export type MethodKey = keyof Methods;
export type ParamsOf<K extends MethodKey> = Methods[K] extends Method<infer P, unknown> ? P : never;
export type ResultOf<K extends MethodKey> = Methods[K] extends Method<unknown, infer R> ? R : never;
