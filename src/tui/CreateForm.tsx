import { Box, Text, useInput, type Key } from 'ink';
import { useEffect, useState } from 'react';

import type { VmDefaultsInfo, VmInfo } from '../rpc/methods.js';
import { MEMORY_MIB, VCPU, VM_NAME } from '../rpc/schemas.js';
import type { CreateSpec, TuiActions } from './actions.js';
import { errorStatus, type Status } from './model.js';
import { applyProgress, finishStages, noStages, type ProgressStages } from './progress-stages.js';
import { editText, keyPresses, StatusLine, TextField, useKeyState } from './widgets.js';

const FIELDS = ['name', 'image', 'vcpu', 'memory'] as const;
type Field = (typeof FIELDS)[number];
type Values = Record<Field, string>;

const LABELS: Record<Field, string> = { name: 'name', image: 'image', vcpu: 'vcpu', memory: 'memory' };

/**
 * The `n` form: name, image, vcpu and memory, each blank for the daemon's
 * default (vm.defaults fills the placeholders). Enter creates the VM and
 * shows the request's progress stages as `vm create` does; a failure stays
 * on the form with its hint, so the fields can be fixed and sent again.
 */
export function CreateForm({ actions, onCreated, onCancel }: { actions: TuiActions; onCreated: (vm: VmInfo) => void; onCancel: () => void }) {
  const [form, setForm] = useKeyState<FormState>({ values: { name: '', image: '', vcpu: '', memory: '' }, focus: 0 });
  const { values, focus } = form();
  const [defaults, setDefaults] = useState<VmDefaultsInfo | null>(null);
  const [creating, setCreating] = useState(false);
  const [stages, setStages] = useState<ProgressStages>(noStages);
  const [error, setError] = useState<Status | null>(null);

  useEffect(() => {
    let current = true;
    // Without defaults the placeholders just say "default": the form works all the same.
    actions.defaults().then(
      (d) => {
        if (current) setDefaults(d);
      },
      () => undefined,
    );
    return () => {
      current = false;
    };
  }, [actions]);

  const submit = (): void => {
    const checked = checkSpec(form().values);
    if ('problem' in checked) {
      setError(checked.problem);
      return;
    }
    setError(null);
    setCreating(true);
    setStages(noStages);
    actions
      .create(checked.spec, (event) => {
        setStages((s) => applyProgress(s, event));
      })
      .then(
        (vm) => {
          onCreated(vm);
        },
        (failure: unknown) => {
          setCreating(false);
          setError(errorStatus(failure));
        },
      );
  };

  useInput((chunk, chunkKey) => {
    if (creating) return;
    for (const { input, key } of keyPresses(chunk, chunkKey)) {
      if (key.escape) onCancel();
      else if (key.return) {
        submit();
        return;
      } else setForm(editForm(form(), input, key));
    }
  });

  const placeholders: Values = {
    name: 'generated',
    image: 'the default image',
    vcpu: defaults === null ? 'default' : `${defaults.vcpu} (${defaults.sources.vcpu})`,
    memory: defaults === null ? 'default' : `${defaults.memoryMiB} MiB (${defaults.sources.memoryMiB}); MiB or e.g. 2G`,
  };
  const shown = creating ? stages : finishedOrFailed(stages, error);
  return (
    <Box flexDirection="column" borderStyle="round" paddingX={1}>
      <Text bold>new VM (blank = default)</Text>
      {FIELDS.map((field, index) => (
        <Box key={field}>
          <Box width={9}>
            <Text bold={index === focus}>{LABELS[field]}</Text>
          </Box>
          <TextField value={values[field]} placeholder={placeholders[field]} focused={!creating && index === focus} />
        </Box>
      ))}
      {shown.done.map((line, index) => (
        <Text key={index} color="green">
          ✓ {line}
        </Text>
      ))}
      {shown.current === null ? null : (
        <Text color={creating ? 'yellow' : 'red'}>
          {creating ? '…' : '✗'} {shown.current.line}
        </Text>
      )}
      <StatusLine status={error} />
    </Box>
  );
}

interface FormState {
  values: Values;
  focus: number;
}

/** Tab, ↓ and ↑ move between the fields (shift-tab back); other keys edit the focused one. */
function editForm(state: FormState, input: string, key: Key): FormState {
  if (key.tab || key.downArrow || key.upArrow) {
    const back = key.upArrow || (key.tab && key.shift);
    return { ...state, focus: (state.focus + (back ? FIELDS.length - 1 : 1)) % FIELDS.length };
  }
  const field = FIELDS[state.focus] ?? 'name';
  const edited = editText(state.values[field], input, key);
  return edited === undefined ? state : { ...state, values: { ...state.values, [field]: edited } };
}

/** After a failure the stage that was running is the one that failed: it keeps its line, marked ✗. */
function finishedOrFailed(stages: ProgressStages, error: Status | null): ProgressStages {
  return error === null ? finishStages(stages) : stages;
}

/** The filled fields as vm.create params, checked with the daemon's own rules (so `2G` is memory, and a bad name is said here). */
export function checkSpec(values: Values): { spec: CreateSpec } | { problem: Status } {
  const [name, image, vcpu, memory] = [values.name.trim(), values.image.trim(), values.vcpu.trim(), values.memory.trim()];
  const checkedName = name === '' ? undefined : VM_NAME.parse(name);
  const checkedVcpu = vcpu === '' ? undefined : VCPU.parse(vcpu);
  const checkedMemory = memory === '' ? undefined : MEMORY_MIB.parse(memory);
  for (const [label, checked] of [
    ['name', checkedName],
    ['vcpu', checkedVcpu],
    ['memory', checkedMemory],
  ] as const) {
    if (checked?.ok === false) {
      const { detail, standalone, hint } = checked.problem;
      return { problem: { kind: 'error', text: standalone ? detail : `${label} ${detail}`, hint } };
    }
  }
  return {
    spec: {
      ...(checkedName?.ok === true ? { name: checkedName.value } : {}),
      ...(image === '' ? {} : { image }),
      ...(checkedVcpu?.ok === true ? { vcpu: checkedVcpu.value } : {}),
      ...(checkedMemory?.ok === true ? { memoryMiB: checkedMemory.value } : {}),
    },
  };
}
