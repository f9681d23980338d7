// Configuration pages (editor, new pool/application, history): filled in when the admin API
// has the operations that edit wasp.toml.

export const pages = { routes: {} };
