/** How much history a `shallow` workspace carries into the guest (see git-metadata.ts). */
export const SHALLOW_FETCH_DEPTH = 20;
