-- Each upstream attempt of a request, so the log (and the dashboard's log detail)
-- explains a failover: a JSON array of {key_id, model, outcome, status, ms}, in the order
-- tried, `[]` for records written before this file and for requests that reached no key.
-- And the proxy's own time until its answer went out (`overhead_us`: since the request's
-- head arrived, less what upstream, backoff and the queue took), NULL where the platform
-- does not measure it; usage_buckets gives its median. Re-runnable, like every file here.

alter table public.request_logs
    add column if not exists attempt_details jsonb not null default '[]'::jsonb,
    add column if not exists overhead_us bigint;

-- As 20261206000000_log_chain.sql's, with each record's attempts and overhead stored too (a record
-- without the field, from a Worker built before it, stores `[]`).
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
            error_kind text, error_message text, request_body text, cost_usd double precision,
            served_model text, cache text, notes text[], prompt_sha256 text, client_ip text,
            user_agent text, chain_id text, chain_seq bigint, chain_sha256 text,
            attempt_details jsonb, overhead_us bigint)
    ),
    inserted as (
        insert into request_logs (
            id, started_at, proxy_key_id, upstream_key_ids, answered_key_id, model, route, api,
            stream, status, attempts, latency_ms, ttfb_ms, prompt_tokens, candidates_tokens,
            thoughts_tokens, cached_tokens, total_tokens, finish_reason, block_reason,
            error_kind, error_message, request_body, cost_usd, served_model, cache, notes,
            prompt_sha256, client_ip, user_agent, chain_id, chain_seq, chain_sha256, attempt_details, overhead_us)
        select id, to_timestamp(started_at_ms / 1000.0), proxy_key_id,
               coalesce(upstream_key_ids, '{}'), answered_key_id, model, route, api,
               coalesce(stream, false), status, coalesce(attempts, 0), coalesce(latency_ms, 0),
               ttfb_ms, prompt_tokens, candidates_tokens, thoughts_tokens, cached_tokens,
               total_tokens, finish_reason, block_reason, error_kind, error_message, request_body,
               cost_usd, served_model, cache, coalesce(notes, '{}'), prompt_sha256, client_ip,
               user_agent, chain_id, chain_seq, chain_sha256, coalesce(attempt_details, '[]'::jsonb),
               overhead_us
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


revoke all on function public.insert_request_logs(jsonb) from public, anon, authenticated;
grant execute on function public.insert_request_logs(jsonb) to service_role;
