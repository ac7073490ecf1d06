-- ---------------------------------------------------------------------------------------
-- Usage per time bucket for the dashboard's charts, keys and usage table, aggregated in
-- the database so a busy week never ships its rows to the dashboard.
-- ---------------------------------------------------------------------------------------

-- Records started in [since_ms, until_ms) (until_ms null: no upper end), grouped by a
-- time bucket of bucket_ms aligned to the Unix epoch (86400000: UTC days; 0: one bucket
-- starting at since_ms) and, where asked, by model, answering key and proxy key; a
-- dimension not asked for is null. Latency percentiles are nearest-rank
-- (percentile_disc), as store-sqlite computes them.
create or replace function public.usage_buckets(
    since_ms        bigint,
    until_ms        bigint,
    bucket_ms       bigint,
    by_model        boolean,
    by_upstream_key boolean,
    by_proxy_key    boolean
)
-- One jsonb array rather than a set of rows: PostgREST's max-rows (1000 on Supabase)
-- cuts sets short silently, and a year of days x models x keys can pass it.
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
               l.thoughts_tokens, l.cached_tokens, l.total_tokens
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
               percentile_disc(0.95) within group (order by r.latency_ms)::bigint as latency_p95_ms
        from r
        group by r.b, r.m, r.k, r.p
    ) as c;
$$;

revoke all on function public.usage_buckets(bigint, bigint, bigint, boolean, boolean, boolean)
    from public, anon, authenticated;
grant execute on function public.usage_buckets(bigint, bigint, bigint, boolean, boolean, boolean)
    to service_role;
