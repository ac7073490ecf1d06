-- Gemini Proxy on PostgreSQL / Supabase: upstream keys, proxy keys, what the proxy learned
-- about each key, and one row per client request.
--
-- Apply with `supabase db push`, with `psql -v ON_ERROR_STOP=1 --single-transaction -f`
-- (on plain PostgreSQL run ../tests/bootstrap_roles.sql first), or with store-postgres's
-- `apply_migrations`. The file holds no BEGIN/COMMIT: each of those runners wraps it in a
-- transaction of its own. Every statement is idempotent, so applying it twice is harmless.
--
-- Who may touch what: only the proxy, connecting as `service_role` (through Supabase's
-- REST API) or as the database owner (direct connection). `anon` and `authenticated` get
-- nothing: no grants, row level security on, no policies. Upstream secrets never leave
-- through the REST API to anyone but the service role.

-- ---------------------------------------------------------------------------------------
-- Tables
-- ---------------------------------------------------------------------------------------

-- Identity columns never hand out an id twice: request logs keep the id of the key that
-- served them, and a key added later must not inherit that history.
create table if not exists public.upstream_keys (
    id         bigint generated always as identity primary key,
    name       text        not null default '',
    -- The Gemini API key itself. Never grant this table (or this column) to anon or
    -- authenticated; the proxy lists keys masked.
    secret     text        not null unique check (secret <> '' and secret !~ '\s'),
    enabled    boolean     not null default true,
    created_at timestamptz not null default now(),
    updated_at timestamptz not null default now()
);

-- Only the SHA-256 of a client key is kept; the check makes it impossible to store the
-- key itself (`gp-…`) here by mistake.
create table if not exists public.proxy_keys (
    id          bigint generated always as identity primary key,
    name        text        not null default '',
    secret_hash text        not null unique check (secret_hash ~ '^[0-9a-f]{64}$'),
    revoked     boolean     not null default false,
    created_at  timestamptz not null default now()
);

-- What the proxy learned about a key (invalid mark, last use) and lifetime counters kept
-- by insert_request_logs. Counters are not reduced when old logs are pruned.
create table if not exists public.key_state (
    key_id            bigint primary key references public.upstream_keys (id) on delete cascade,
    invalid_reason    text,
    invalid_at        timestamptz,
    last_used_at      timestamptz,
    requests          bigint not null default 0,
    errors            bigint not null default 0,
    prompt_tokens     bigint not null default 0,
    candidates_tokens bigint not null default 0,
    thoughts_tokens   bigint not null default 0,
    cached_tokens     bigint not null default 0,
    total_tokens      bigint not null default 0
);

-- A rate-limited key is cooled down per model until `until_at`.
create table if not exists public.key_cooldowns (
    key_id   bigint      not null references public.upstream_keys (id) on delete cascade,
    model    text        not null,
    until_at timestamptz not null,
    primary key (key_id, model)
);

-- One row per client request, one column per field of proxy_core::log::LogRecord. No
-- foreign keys on purpose: logs outlive removed keys. The id sorts by time; "C"
-- collation makes it sort byte-wise, as the proxy expects, whatever the database locale.
create table if not exists public.request_logs (
    id                text collate "C" primary key,
    started_at        timestamptz not null,
    proxy_key_id      bigint,
    upstream_key_ids  bigint[]    not null default '{}', -- keys tried, in order
    answered_key_id   bigint,
    model             text,
    route             text        not null,
    api               text        not null,
    stream            boolean     not null default false,
    status            integer     not null,
    attempts          integer     not null default 0,
    latency_ms        bigint      not null default 0,
    ttfb_ms           bigint,
    prompt_tokens     bigint,
    candidates_tokens bigint,
    thoughts_tokens   bigint,
    cached_tokens     bigint,
    total_tokens      bigint,
    finish_reason     text,
    block_reason      text,
    error_kind        text,
    error_message     text, -- already scrubbed of keys by the proxy
    request_body      text  -- only when body logging is on
);

-- The dashboard's filters: newest first overall, per model, per answering key, per client
-- key, and "every request that tried key N" through the GIN index.
create index if not exists request_logs_started_at_idx on public.request_logs (started_at desc, id desc);
create index if not exists request_logs_model_idx on public.request_logs (model, started_at);
create index if not exists request_logs_answered_key_idx on public.request_logs (answered_key_id, started_at);
create index if not exists request_logs_proxy_key_idx on public.request_logs (proxy_key_id, started_at);
create index if not exists request_logs_upstream_key_ids_idx on public.request_logs using gin (upstream_key_ids);

-- ---------------------------------------------------------------------------------------
-- Triggers
-- ---------------------------------------------------------------------------------------

create or replace function public.touch_updated_at() returns trigger
language plpgsql
set search_path = public, pg_temp
as $$
begin
    new.updated_at := now();
    return new;
end
$$;

create or replace trigger upstream_keys_touch_updated_at
    before update on public.upstream_keys
    for each row execute function public.touch_updated_at();

-- Instances connected directly to PostgreSQL LISTEN on `gemini_proxy_keys` and reload
-- their keys at once instead of waiting for the next periodic refresh. The payload is only
-- the table name. Row-level triggers: a statement that changes nothing stays silent, and
-- PostgreSQL folds identical notifications of one transaction into one.
create or replace function public.notify_key_change() returns trigger
language plpgsql
set search_path = public, pg_temp
as $$
begin
    perform pg_notify('gemini_proxy_keys', tg_table_name);
    return null;
end
$$;

create or replace trigger upstream_keys_notify
    after insert or update or delete on public.upstream_keys
    for each row execute function public.notify_key_change();
create or replace trigger upstream_keys_notify_truncate
    after truncate on public.upstream_keys
    for each statement execute function public.notify_key_change();
create or replace trigger proxy_keys_notify
    after insert or update or delete on public.proxy_keys
    for each row execute function public.notify_key_change();
create or replace trigger key_cooldowns_notify
    after insert or update or delete on public.key_cooldowns
    for each row execute function public.notify_key_change();
-- key_state changes with every log batch (counters, last use); only the invalid mark
-- matters to other instances.
create or replace trigger key_state_notify_insert
    after insert on public.key_state
    for each row when (new.invalid_reason is not null)
    execute function public.notify_key_change();
create or replace trigger key_state_notify_update
    after update of invalid_reason on public.key_state
    for each row when (old.invalid_reason is distinct from new.invalid_reason)
    execute function public.notify_key_change();

-- ---------------------------------------------------------------------------------------
-- Functions the proxy calls. SECURITY DEFINER so they work the same whichever role calls
-- them (only service_role may), with a fixed search_path so a caller cannot substitute
-- objects; pg_temp is named last because otherwise it is searched first.
-- ---------------------------------------------------------------------------------------

-- Applies a batch of learned key state, as JSON:
--   [{"kind":"cooldown","key_id":1,"model":"gemini-2.5-flash","until_ms":1764000000000},
--    {"kind":"invalid","key_id":2,"reason":"API_KEY_INVALID"}]
-- A cooldown never shortens one already stored (the later end wins); for several invalid
-- marks of one key the last one wins. Changes for keys removed meanwhile are skipped, so
-- one stale change cannot fail the batch. Expired cooldowns are swept on the way.
create or replace function public.record_key_state(changes jsonb) returns void
language plpgsql
security definer
set search_path = public, pg_temp
as $$
begin
    if jsonb_typeof(changes) is distinct from 'array' then
        raise exception 'record_key_state expects a JSON array' using errcode = '22023';
    end if;
    if exists (
        select 1 from jsonb_array_elements(changes) as e(change)
        where e.change ->> 'kind' is null or e.change ->> 'kind' not in ('cooldown', 'invalid')
    ) then
        raise exception 'record_key_state: every change needs kind "cooldown" or "invalid"'
            using errcode = '22023';
    end if;

    -- Grouped first: ON CONFLICT DO UPDATE cannot touch one row twice in a statement.
    -- Ordered by key so concurrent batches lock rows in the same order (no deadlock).
    insert into key_cooldowns (key_id, model, until_at)
    select c.key_id, c.model, max(to_timestamp(c.until_ms / 1000.0))
    from (
        select (e.change ->> 'key_id')::bigint as key_id,
               e.change ->> 'model' as model,
               (e.change ->> 'until_ms')::bigint as until_ms
        from jsonb_array_elements(changes) as e(change)
        where e.change ->> 'kind' = 'cooldown'
    ) as c
    where c.model is not null and c.until_ms is not null
      and exists (select 1 from upstream_keys k where k.id = c.key_id)
    group by c.key_id, c.model
    order by c.key_id, c.model
    on conflict (key_id, model) do update
        set until_at = greatest(key_cooldowns.until_at, excluded.until_at);

    insert into key_state (key_id, invalid_reason, invalid_at)
    select distinct on (i.key_id) i.key_id, i.reason, now()
    from (
        select (e.change ->> 'key_id')::bigint as key_id,
               coalesce(e.change ->> 'reason', 'invalid') as reason,
               e.ord
        from jsonb_array_elements(changes) with ordinality as e(change, ord)
        where e.change ->> 'kind' = 'invalid'
    ) as i
    where exists (select 1 from upstream_keys k where k.id = i.key_id)
    order by i.key_id, i.ord desc
    on conflict (key_id) do update
        set invalid_reason = excluded.invalid_reason, invalid_at = excluded.invalid_at;

    delete from key_cooldowns where until_at <= now();
end
$$;

-- Inserts a batch of request logs and adds them to the per-key counters, in one statement
-- (so one transaction). The JSON is an array of LogRecords exactly as proxy_core
-- serialises them (`started_at_ms`, `upstream_key_ids`, …). A record whose id is already
-- stored is skipped, and the counters are computed from the rows actually inserted, so a
-- retried batch changes nothing. Counters are added in place (`requests = requests + n`)
-- under the row lock ON CONFLICT takes: concurrent callers never lose an update. Per key:
-- `requests`, `errors` and tokens count the requests it answered; `last_used_at` is the
-- latest start of a request that tried it. Returns how many rows were inserted.
create or replace function public.insert_request_logs(records jsonb) returns integer
language sql
security definer
set search_path = public, pg_temp
as $$
    with input as (
        select *
        from jsonb_to_recordset(records) as r(
            id text, started_at_ms bigint, proxy_key_id bigint, upstream_key_ids bigint[],
            answered_key_id bigint, model text, route text, api text, stream boolean,
            status integer, attempts integer, latency_ms bigint, ttfb_ms bigint,
            prompt_tokens bigint, candidates_tokens bigint, thoughts_tokens bigint,
            cached_tokens bigint, total_tokens bigint, finish_reason text, block_reason text,
            error_kind text, error_message text, request_body text)
    ),
    inserted as (
        insert into request_logs (
            id, started_at, proxy_key_id, upstream_key_ids, answered_key_id, model, route, api,
            stream, status, attempts, latency_ms, ttfb_ms, prompt_tokens, candidates_tokens,
            thoughts_tokens, cached_tokens, total_tokens, finish_reason, block_reason,
            error_kind, error_message, request_body)
        select id, to_timestamp(started_at_ms / 1000.0), proxy_key_id,
               coalesce(upstream_key_ids, '{}'), answered_key_id, model, route, api,
               coalesce(stream, false), status, coalesce(attempts, 0), coalesce(latency_ms, 0),
               ttfb_ms, prompt_tokens, candidates_tokens, thoughts_tokens, cached_tokens,
               total_tokens, finish_reason, block_reason, error_kind, error_message, request_body
        from input
        order by id
        on conflict (id) do nothing
        returning *
    ),
    answered as (
        select answered_key_id as key_id,
               count(*) as requests,
               count(*) filter (where status >= 400 or error_kind is not null) as errors,
               coalesce(sum(prompt_tokens), 0) as prompt_tokens,
               coalesce(sum(candidates_tokens), 0) as candidates_tokens,
               coalesce(sum(thoughts_tokens), 0) as thoughts_tokens,
               coalesce(sum(cached_tokens), 0) as cached_tokens,
               coalesce(sum(total_tokens), 0) as total_tokens
        from inserted
        where answered_key_id is not null
        group by answered_key_id
    ),
    tried as (
        select t.key_id, max(i.started_at) as last_used_at
        from inserted as i
        cross join lateral unnest(i.upstream_key_ids) as t(key_id)
        group by t.key_id
    ),
    per_key as (
        select coalesce(a.key_id, t.key_id) as key_id,
               t.last_used_at,
               coalesce(a.requests, 0) as requests,
               coalesce(a.errors, 0) as errors,
               coalesce(a.prompt_tokens, 0) as prompt_tokens,
               coalesce(a.candidates_tokens, 0) as candidates_tokens,
               coalesce(a.thoughts_tokens, 0) as thoughts_tokens,
               coalesce(a.cached_tokens, 0) as cached_tokens,
               coalesce(a.total_tokens, 0) as total_tokens
        from answered as a
        full join tried as t on t.key_id = a.key_id
    ),
    counted as (
        insert into key_state (
            key_id, last_used_at, requests, errors, prompt_tokens, candidates_tokens,
            thoughts_tokens, cached_tokens, total_tokens)
        select p.key_id, p.last_used_at, p.requests, p.errors, p.prompt_tokens,
               p.candidates_tokens, p.thoughts_tokens, p.cached_tokens, p.total_tokens
        from per_key as p
        -- Logs may name keys removed meanwhile; their counters have nowhere to go.
        where exists (select 1 from upstream_keys k where k.id = p.key_id)
        order by p.key_id
        on conflict (key_id) do update set
            last_used_at      = greatest(key_state.last_used_at, excluded.last_used_at),
            requests          = key_state.requests + excluded.requests,
            errors            = key_state.errors + excluded.errors,
            prompt_tokens     = key_state.prompt_tokens + excluded.prompt_tokens,
            candidates_tokens = key_state.candidates_tokens + excluded.candidates_tokens,
            thoughts_tokens   = key_state.thoughts_tokens + excluded.thoughts_tokens,
            cached_tokens     = key_state.cached_tokens + excluded.cached_tokens,
            total_tokens      = key_state.total_tokens + excluded.total_tokens
        returning 1
    )
    select count(*)::integer from inserted;
$$;

-- Deletes request logs that started before `before_at`; returns how many. The proxy's
-- `logs prune` passes an absolute time, so its cutoff does not depend on clock skew.
create or replace function public.prune_request_logs_before(before_at timestamptz) returns bigint
language sql
security definer
set search_path = public, pg_temp
as $$
    with gone as (
        delete from request_logs where started_at < before_at returning 1
    )
    select count(*) from gone;
$$;

-- The same for scheduled jobs: `select prune_request_logs('30 days')` (pg_cron).
create or replace function public.prune_request_logs(older_than interval) returns bigint
language sql
security definer
set search_path = public, pg_temp
as $$
    select prune_request_logs_before(now() - older_than);
$$;

-- ---------------------------------------------------------------------------------------
-- Usage for the dashboard
-- ---------------------------------------------------------------------------------------

-- One row per UTC day, model and answering key. security_invoker: the view reads the
-- table with the caller's rights (and RLS), never its owner's.
create or replace view public.usage_daily with (security_invoker = true) as
select (l.started_at at time zone 'UTC')::date as day,
       l.model,
       l.answered_key_id as key_id,
       count(*) as requests,
       count(*) filter (where l.status >= 400 or l.error_kind is not null) as errors,
       coalesce(sum(l.prompt_tokens), 0)::bigint as prompt_tokens,
       coalesce(sum(l.candidates_tokens), 0)::bigint as candidates_tokens,
       coalesce(sum(l.thoughts_tokens), 0)::bigint as thoughts_tokens,
       coalesce(sum(l.cached_tokens), 0)::bigint as cached_tokens,
       coalesce(sum(l.total_tokens), 0)::bigint as total_tokens,
       div(sum(l.latency_ms), count(*))::bigint as avg_latency_ms,
       percentile_cont(0.5) within group (order by l.latency_ms) as latency_p50_ms,
       percentile_cont(0.95) within group (order by l.latency_ms) as latency_p95_ms
from public.request_logs as l
group by 1, 2, 3;

-- Totals since `since`: one row with group_kind 'total' (always present), one per model
-- ('model'; requests with no model as "(none)") and one per answering key ('key', named
-- by the key's current name, "#id" when unnamed or removed, "(none)" when no key
-- answered). One statement, so the three groupings add up to the same total.
create or replace function public.usage_summary(since timestamptz)
returns table (
    group_kind        text,
    group_name        text,
    model             text,
    key_id            bigint,
    requests          bigint,
    errors            bigint,
    prompt_tokens     bigint,
    candidates_tokens bigint,
    thoughts_tokens   bigint,
    cached_tokens     bigint,
    total_tokens      bigint,
    avg_latency_ms    bigint,
    latency_p50_ms    double precision,
    latency_p95_ms    double precision
)
language sql
stable
security definer
set search_path = public, pg_temp
as $$
    with g as (
        select grouping(l.model) as by_model_off,
               grouping(l.answered_key_id) as by_key_off,
               l.model as model,
               l.answered_key_id as key_id,
               count(*) as requests,
               count(*) filter (where l.status >= 400 or l.error_kind is not null) as errors,
               coalesce(sum(l.prompt_tokens), 0)::bigint as prompt_tokens,
               coalesce(sum(l.candidates_tokens), 0)::bigint as candidates_tokens,
               coalesce(sum(l.thoughts_tokens), 0)::bigint as thoughts_tokens,
               coalesce(sum(l.cached_tokens), 0)::bigint as cached_tokens,
               coalesce(sum(l.total_tokens), 0)::bigint as total_tokens,
               coalesce(div(sum(l.latency_ms), nullif(count(*), 0)), 0)::bigint as avg_latency_ms,
               percentile_cont(0.5) within group (order by l.latency_ms) as latency_p50_ms,
               percentile_cont(0.95) within group (order by l.latency_ms) as latency_p95_ms
        from request_logs as l
        where l.started_at >= since
        group by grouping sets ((), (l.model), (l.answered_key_id))
    )
    select case when g.by_model_off = 0 then 'model'
                when g.by_key_off = 0 then 'key'
                else 'total' end,
           case when g.by_model_off = 0 then coalesce(g.model, '(none)')
                when g.by_key_off = 0 then
                    case when g.key_id is null then '(none)'
                         else coalesce(
                             nullif((select k.name from upstream_keys k where k.id = g.key_id), ''),
                             '#' || g.key_id)
                    end
                else 'total' end,
           g.model, g.key_id, g.requests, g.errors, g.prompt_tokens, g.candidates_tokens,
           g.thoughts_tokens, g.cached_tokens, g.total_tokens, g.avg_latency_ms,
           g.latency_p50_ms, g.latency_p95_ms
    from g;
$$;

-- ---------------------------------------------------------------------------------------
-- Access: row level security everywhere, no policies, nothing for anon/authenticated.
-- Supabase's default privileges grant new tables, sequences and functions in `public`
-- to anon and authenticated, and PostgreSQL lets PUBLIC execute every new function, so
-- everything is revoked explicitly and granted back to service_role alone.
-- ---------------------------------------------------------------------------------------

alter table public.upstream_keys enable row level security;
alter table public.proxy_keys enable row level security;
alter table public.key_state enable row level security;
alter table public.key_cooldowns enable row level security;
alter table public.request_logs enable row level security;

revoke all on table
    public.upstream_keys, public.proxy_keys, public.key_state, public.key_cooldowns,
    public.request_logs, public.usage_daily
    from public, anon, authenticated;
grant select, insert, update, delete on table
    public.upstream_keys, public.proxy_keys, public.key_state, public.key_cooldowns,
    public.request_logs
    to service_role;
grant select on table public.usage_daily to service_role;

revoke all on sequence public.upstream_keys_id_seq, public.proxy_keys_id_seq
    from public, anon, authenticated;
grant usage, select on sequence public.upstream_keys_id_seq, public.proxy_keys_id_seq
    to service_role;

revoke all on function
    public.touch_updated_at(),
    public.notify_key_change(),
    public.record_key_state(jsonb),
    public.insert_request_logs(jsonb),
    public.prune_request_logs_before(timestamptz),
    public.prune_request_logs(interval),
    public.usage_summary(timestamptz)
    from public, anon, authenticated;
grant execute on function
    public.record_key_state(jsonb),
    public.insert_request_logs(jsonb),
    public.prune_request_logs_before(timestamptz),
    public.prune_request_logs(interval),
    public.usage_summary(timestamptz)
    to service_role;

comment on column public.upstream_keys.secret is
    'Gemini API key. Readable by the proxy (service_role / owner) only; never grant to anon or authenticated.';
comment on column public.proxy_keys.secret_hash is
    'Lowercase hex SHA-256 of the client key; the key itself is never stored.';
