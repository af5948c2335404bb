import { randomInt } from 'node:crypto';

import { BangerError } from '../../rpc/errors.js';

/** VM names are DNS labels: they become hostnames and `<name>.vm` records. */
const DNS_LABEL = /^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$/;

export function validateVmName(name: string): void {
  if (!DNS_LABEL.test(name)) {
    throw new BangerError('ERR_INVALID_ARGUMENT', `"${name}" is not a valid VM name`, {
      hint: 'use 1-63 lowercase letters, digits and dashes, starting and ending with a letter or digit (it becomes the hostname)',
    });
  }
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
