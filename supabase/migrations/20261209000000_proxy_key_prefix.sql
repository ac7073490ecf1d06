-- A proxy key's shown prefix: the secret's first characters (`gp-` and 6 of its 48 hex
-- digits, proxy_core::auth::secret_prefix), kept beside its hash so the dashboard and
-- `proxy-keys list` tell keys apart and an operator can match one to the app using it.
-- NULL for keys created before this file. Re-runnable, like every file here; the
-- table's grants (service_role only) cover the new column.

alter table public.proxy_keys
    add column if not exists secret_prefix text;
