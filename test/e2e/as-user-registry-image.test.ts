/**
 * The registry-image suite again, with banger (CLI, daemon, pulls, QEMU)
 * running as the ordinary test user: layers are flattened and packed in a
 * user namespace, and the owners in the guest must still be the layers'.
 */
process.env.BANGER_TEST_AS_USER = '1';
await import('./registry-image.test.js');
