-- ---------------------------------------------------------------------------------------
-- Per proxy key policy, first piece: may the key use the pass-through routes (everything
-- under /v1beta and /v1 that is not generation, embeddings or models: files,
-- cachedContents, tunedModels, batches, operations, ...). Those act on every resource of
-- the pool's projects, so an operator can keep a client key off them. Keys that exist
-- keep what they could do (true). The governance limits are to join this table the same
-- way. Idempotent, like every migration here.
-- ---------------------------------------------------------------------------------------

alter table public.proxy_keys
    add column if not exists passthrough boolean not null default true;

comment on column public.proxy_keys.passthrough is
    'May this client key use the pass-through routes (files, cachedContents, tunedModels, batches, operations)? Refused with 403 passthrough_denied when false.';

-- The table's access stays as the first migration set it, restated so this file shows
-- it: row level security on, no policies, nothing for anon/authenticated (a table-level
-- revoke also takes back any grant on its columns, the new one included), everything for
-- service_role. Changing the column fires proxy_keys_notify, so directly connected
-- instances reload at once.
alter table public.proxy_keys enable row level security;
revoke all on table public.proxy_keys from public, anon, authenticated;
grant select, insert, update, delete on table public.proxy_keys to service_role;
