import { Box, Text, useInput } from 'ink';

import { editText, keyPresses, TextField, useKeyState } from './widgets.js';

/** The `e` prompt: where to write the VM's workspace patch, `./<vm>.patch` filled in. */
export function ExportPrompt({ vm, onSubmit, onCancel }: { vm: string; onSubmit: (path: string) => void; onCancel: () => void }) {
  const [path, setPath] = useKeyState(`./${vm}.patch`);
  useInput((chunk, chunkKey) => {
    for (const { input, key } of keyPresses(chunk, chunkKey)) {
      if (key.escape) onCancel();
      else if (key.return) {
        if (path().trim() !== '') onSubmit(path().trim());
        return;
      } else setPath(editText(path(), input, key) ?? path());
    }
  });
  return (
    <Box borderStyle="round" paddingX={1}>
      <Text>export the workspace patch of {vm} to: </Text>
      <TextField value={path()} placeholder="a file path" focused />
    </Box>
  );
}
