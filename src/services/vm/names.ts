import { randomInt } from 'node:crypto';

import { VM_NAME } from '../../rpc/schemas.js';
import { mustPass } from '../../rpc/validation.js';

/** VM names are DNS labels: they become hostnames and `<name>.vm` records (the rule: VM_NAME in src/rpc/schemas.ts). */
export function validateVmName(name: string): void {
  mustPass(VM_NAME.check(name), 'the VM name');
}

const ADJECTIVES = [
  'brisk',
  'calm',
  'eager',
  'fuzzy',
  'gentle',
  'happy',
  'jolly',
  'keen',
  'lucky',
  'mellow',
  'nimble',
  'proud',
  'quiet',
  'rapid',
  'sunny',
  'tidy',
  'vivid',
  'witty',
  'zesty',
  'bold',
];
const NOUNS = [
  'otter',
  'falcon',
  'badger',
  'heron',
  'lynx',
  'marten',
  'newt',
  'puffin',
  'quokka',
  'raven',
  'stoat',
  'tapir',
  'walrus',
  'yak',
  'zebu',
  'ibis',
  'koala',
  'lemur',
  'moose',
  'panda',
];

export function generateVmName(taken: (name: string) => boolean): string {
  for (let attempt = 0; attempt < 50; attempt++) {
    const name = `${ADJECTIVES[randomInt(ADJECTIVES.length)] ?? 'vm'}-${NOUNS[randomInt(NOUNS.length)] ?? 'box'}`;
    if (!taken(name)) return name;
  }
  return `vm-${randomInt(16 ** 6)
    .toString(16)
    .padStart(6, '0')}`;
}
