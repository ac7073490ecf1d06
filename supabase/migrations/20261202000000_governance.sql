-- ---------------------------------------------------------------------------------------
-- Governance: the rest of a proxy key's policy (models, rates, tokens per day, a budget,
-- an expiry), an upstream key's own limits, cooldowns that say a model is off for a key
-- (Google's quota for it is 0), and what each request cost by the proxy's price table.
-- Every new column is empty for rows that exist (no limit, no cost): keys keep what they
-- could do. Idempotent, like every migration here.
-- ---------------------------------------------------------------------------------------

-- proxy_core::policy::ProxyKeyPolicy, one column per field. NULL: no such limit.
alter table public.proxy_keys
    add column if not exists models         text[]      not null default '{}',
    add column if not exists rpm            bigint      check (rpm >= 0),
    add column if not exists tpm            bigint      check (tpm >= 0),
    add column if not exists tokens_per_day bigint      check (tokens_per_day >= 0),
    add column if not exists budget_usd     numeric     check (budget_usd >= 0),
    add column if not exists budget_period  text        not null default 'month'
        check (budget_period in ('day', 'month')),
    add column if not exists expires_at     timestamptz;

comment on column public.proxy_keys.models is
    'Models the client key may use: exact names or * globs (gemini-2.5-*); empty: any.';
comment on column public.proxy_keys.rpm is 'Requests per minute; null: no limit.';
comment on column public.proxy_keys.tpm is 'Tokens per minute; null: no limit.';
comment on column public.proxy_keys.tokens_per_day is 'Tokens per UTC day; null: no limit.';
comment on column public.proxy_keys.budget_usd is
    'USD per budget_period (UTC day or month), by the proxy''s price table; null: no budget.';
comment on column public.proxy_keys.expires_at is 'Refused from this time on; null: never.';

-- proxy_core::keys::KeyLimits as serde JSON:
--   {"all_models":{"rpm":10,"tpm":null,"rpd":500},"models":{"gemini-2.5-pro":{"rpm":2}}}
alter table public.upstream_keys
    add column if not exists limits jsonb not null default '{}'::jsonb;

comment on column public.upstream_keys.limits is
    'The operator''s limits for this key (rpm, tpm, rpd; for every model and per model), as proxy_core::keys::KeyLimits JSON.';

-- A cooldown whose model is off for the key (its quota is 0), not merely spent.
alter table public.key_cooldowns
    add column if not exists model_off boolean not null default false;

-- What the answer cost in USD; null without usage or for a model without a price.
alter table public.request_logs
    add column if not exists cost_usd double precision;

-- ---------------------------------------------------------------------------------------
-- Functions
-- ---------------------------------------------------------------------------------------

-- Applies a batch of learned key state, as JSON:
--   [{"kind":"cooldown","key_id":1,"model":"gemini-2.5-flash","until_ms":1764000000000},
--    {"kind":"model_off","key_id":1,"model":"gemini-2.5-pro","until_ms":1764000000000},
--    {"kind":"invalid","key_id":2,"reason":"API_KEY_INVALID"}]
-- A cooldown never shortens one already stored (the later end wins); whether the model is
-- off is what the latest change of the batch said ("model_off" sets it, a plain
-- "cooldown" clears it). For several invalid marks of one key the last one wins. Changes
-- for keys removed meanwhile are skipped, so one stale change cannot fail the batch.
-- Expired cooldowns are swept on the way.
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
        where e.change ->> 'kind' is null
           or e.change ->> 'kind' not in ('cooldown', 'model_off', 'invalid')
    ) then
        raise exception 'record_key_state: every change needs kind "cooldown", "model_off" or "invalid"'
            using errcode = '22023';
    end if;

    -- Grouped first: ON CONFLICT DO UPDATE cannot touch one row twice in a statement.
    -- Ordered by key so concurrent batches lock rows in the same order (no deadlock).
    insert into key_cooldowns (key_id, model, until_at, model_off)
    select c.key_id, c.model, max(to_timestamp(c.until_ms / 1000.0)),
           (array_agg(c.model_off order by c.ord desc))[1]
    from (
        select (e.change ->> 'key_id')::bigint as key_id,
               e.change ->> 'model' as model,
               (e.change ->> 'until_ms')::bigint as until_ms,
               e.change ->> 'kind' = 'model_off' as model_off,
               e.ord
        from jsonb_array_elements(changes) with ordinality as e(change, ord)
        where e.change ->> 'kind' in ('cooldown', 'model_off')
    ) as c
    where c.model is not null and c.until_ms is not null
      and exists (select 1 from upstream_keys k where k.id = c.key_id)
    group by c.key_id, c.model
    order by c.key_id, c.model
    on conflict (key_id, model) do update
        set until_at = greatest(key_cooldowns.until_at, excluded.until_at),
            model_off = excluded.model_off;

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

-- As 20261124000000_gemini_proxy.sql's, with each record's `cost_usd` stored too.
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
            error_kind text, error_message text, request_body text, cost_usd double precision)
    ),
    inserted as (
        insert into request_logs (
            id, started_at, proxy_key_id, upstream_key_ids, answered_key_id, model, route, api,
            stream, status, attempts, latency_ms, ttfb_ms, prompt_tokens, candidates_tokens,
            thoughts_tokens, cached_tokens, total_tokens, finish_reason, block_reason,
            error_kind, error_message, request_body, cost_usd)
        select id, to_timestamp(started_at_ms / 1000.0), proxy_key_id,
               coalesce(upstream_key_ids, '{}'), answered_key_id, model, route, api,
               coalesce(stream, false), status, coalesce(attempts, 0), coalesce(latency_ms, 0),
               ttfb_ms, prompt_tokens, candidates_tokens, thoughts_tokens, cached_tokens,
               total_tokens, finish_reason, block_reason, error_kind, error_message, request_body,
               cost_usd
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

-- As 20261125000000_usage_buckets.sql's, with `cost_usd`: the sum of the records' cost
-- (a record without one counts 0).
create or replace function public.usage_buckets(
    since_ms        bigint,
    until_ms        bigint,
    bucket_ms       bigint,
    by_model        boolean,
    by_upstream_key boolean,
    by_proxy_key    boolean
)
returns jsonb
language sql
stable
security definer
set search_path = public, pg_temp
as $$
    with r as (
        select case when usage_buckets.bucket_ms > 0
                    then div((extract(epoch from l.started_at) * 1000)::bigint,
                             usage_buckets.bucket_ms) * usage_buckets.bucket_ms
                    else usage_buckets.since_ms end::bigint as b,
               case when usage_buckets.by_model then l.model end as m,
               case when usage_buckets.by_upstream_key then l.answered_key_id end as k,
               case when usage_buckets.by_proxy_key then l.proxy_key_id end as p,
               l.status, l.error_kind, l.latency_ms, l.prompt_tokens, l.candidates_tokens,
               l.thoughts_tokens, l.cached_tokens, l.total_tokens, l.cost_usd
        from request_logs as l
        where l.started_at >= to_timestamp(usage_buckets.since_ms / 1000.0)
          and (usage_buckets.until_ms is null
               or l.started_at < to_timestamp(usage_buckets.until_ms / 1000.0))
    )
    select coalesce(jsonb_agg(to_jsonb(c)), '[]'::jsonb)
    from (
        select r.b as bucket_start_ms,
               r.m as model,
               r.k as upstream_key_id,
               r.p as proxy_key_id,
               count(*) as requests,
               count(*) filter (where r.status >= 400 or r.error_kind is not null) as errors,
               coalesce(sum(r.prompt_tokens), 0)::bigint as prompt_tokens,
               coalesce(sum(r.candidates_tokens), 0)::bigint as candidates_tokens,
               coalesce(sum(r.thoughts_tokens), 0)::bigint as thoughts_tokens,
               coalesce(sum(r.cached_tokens), 0)::bigint as cached_tokens,
               coalesce(sum(r.total_tokens), 0)::bigint as total_tokens,
               coalesce(sum(r.latency_ms), 0)::bigint as latency_sum_ms,
               percentile_disc(0.5) within group (order by r.latency_ms)::bigint as latency_p50_ms,
               percentile_disc(0.95) within group (order by r.latency_ms)::bigint as latency_p95_ms,
               coalesce(sum(r.cost_usd), 0)::double precision as cost_usd
        from r
        group by r.b, r.m, r.k, r.p
    ) as c;
$$;

-- usage_daily keeps its columns: a view can only grow at the end, and the first
-- migration (re-run, as every file here may be) would then have to drop one. Costs per
-- day, model and key come from usage_buckets(since, until, 86400000, true, true, false).

-- ---------------------------------------------------------------------------------------
-- Access, restated as the first migration set it: row level security on, no policies,
-- nothing for anon/authenticated (a table-level revoke also takes back any grant on its
-- columns, the new ones included), everything for service_role; functions executable by
-- service_role alone. Changing a proxy key, an upstream key's limits or a cooldown fires
-- the tables' notify triggers, so directly connected instances reload at once.
-- ---------------------------------------------------------------------------------------

alter table public.upstream_keys enable row level security;
alter table public.proxy_keys enable row level security;
alter table public.key_cooldowns enable row level security;
alter table public.request_logs enable row level security;

revoke all on table
    public.upstream_keys, public.proxy_keys, public.key_cooldowns, public.request_logs
    from public, anon, authenticated;
grant select, insert, update, delete on table
    public.upstream_keys, public.proxy_keys, public.key_cooldowns, public.request_logs
    to service_role;

revoke all on function
    public.record_key_state(jsonb),
    public.insert_request_logs(jsonb),
    public.usage_buckets(bigint, bigint, bigint, boolean, boolean, boolean)
    from public, anon, authenticated;
grant execute on function
    public.record_key_state(jsonb),
    public.insert_request_logs(jsonb),
    public.usage_buckets(bigint, bigint, bigint, boolean, boolean, boolean)
    to service_role;
