// Auth lives in src/security (the API and the feed both use it). This re-export only keeps src/feed/session.ts, being
// redesigned on another branch, compiling until that branch imports from src/security/auth.ts; then it goes.
export type { Principal } from '../security/auth.js';
