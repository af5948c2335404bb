import { Text, type Key } from 'ink';
import { useReducer, useRef } from 'react';

import type { Status } from './model.js';

/** Small pieces the TUI's screens share. */

/**
 * Line editing for the TUI's fields: printable input (a paste arrives as one
 * string) is appended, backspace/delete remove the last character. Returns
 * the new value, or undefined when the key is not an edit (the caller's
 * navigation or submit key).
 */
export function editText(value: string, input: string, key: Key): string | undefined {
  if (key.backspace || key.delete) return value.slice(0, -1);
  if (key.ctrl || key.meta || key.return || key.escape || key.tab || key.upArrow || key.downArrow || key.leftArrow || key.rightArrow) return undefined;
  // eslint-disable-next-line no-control-regex
  const text = input.replace(/[\x00-\x1f\x7f]/g, '');
  return text === '' ? undefined : value + text;
}

/**
 * The key presses in one input event. ink splits its input at escape
 * sequences only, so a paste or keys sent together (`name⇥3⏎`) arrive as
 * one string: this splits out tab, enter and backspace so each acts.
 */
export function keyPresses(input: string, key: Key): { input: string; key: Key }[] {
  if (input.length <= 1 || !/[\t\r\n\x7f\b]/.test(input)) return [{ input, key }];
  return input
    .split(/([\t\r\n\x7f\b])/)
    .filter((part) => part !== '')
    .map((part) => ({
      input: part,
      key: { ...key, tab: part === '\t', return: part === '\r' || part === '\n', backspace: part === '\x7f' || part === '\b' },
    }));
}

/**
 * State that key handlers read and write at once. ink hands over every key
 * of a chunk (a paste, `abc⏎`, fast typing) before React redraws, so a
 * handler reading render-time state would see the value from before the
 * previous key: this keeps the value in a ref and redraws on change.
 */
export function useKeyState<T>(initial: T): [get: () => T, set: (next: T) => void] {
  const ref = useRef(initial);
  const [, redraw] = useReducer((n: number) => n + 1, 0);
  return [
    () => ref.current,
    (next) => {
      if (next === ref.current) return;
      ref.current = next;
      redraw();
    },
  ];
}

/** A one-line field: its value with a block cursor when focused, the placeholder (dimmed) when empty. */
export function TextField({ value, placeholder, focused }: { value: string; placeholder: string; focused: boolean }) {
  return (
    <Text>
      {value === '' ? <Text dimColor>{placeholder}</Text> : value}
      {focused ? <Text inverse> </Text> : null}
    </Text>
  );
}

/** The status line (and the hint under it, for an error that has one). */
export function StatusLine({ status }: { status: Status | null }) {
  if (status === null) return <Text> </Text>;
  const color = status.kind === 'error' ? 'red' : status.kind === 'busy' ? 'yellow' : 'green';
  return (
    <>
      <Text color={color} wrap="truncate-end">
        {status.kind === 'busy' ? '… ' : ''}
        {status.text}
      </Text>
      {status.hint === undefined ? null : (
        <Text dimColor wrap="truncate-end">
          hint: {status.hint}
        </Text>
      )}
    </>
  );
}
