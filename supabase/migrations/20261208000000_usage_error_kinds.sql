-- usage_buckets counts each group's failed records per failure key, so the dashboard
-- splits the error rate by class (safety blocks that were HTTP 200, no key free, client
-- mistakes, upstream errors), and gives the medians of the time to first byte and of
-- the proxy's own time (overhead_us, from 20261207000000). The failure key
-- is the record's error_kind, or 'status_' || status for a failed status without one;
-- proxy_core::error_class states the same rule and decides which class a key is in, so a
-- new kind needs no migration. Same signature and result type as before (jsonb), so
-- `create or replace` keeps working when the file is re-run.

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
               case when l.status >= 400 or l.error_kind is not null
                    then coalesce(l.error_kind, 'status_' || l.status) end as f,
               l.latency_ms, l.ttfb_ms, l.overhead_us, l.prompt_tokens, l.candidates_tokens,
               l.thoughts_tokens, l.cached_tokens, l.total_tokens, l.cost_usd
        from request_logs as l
        where l.started_at >= to_timestamp(usage_buckets.since_ms / 1000.0)
          and (usage_buckets.until_ms is null
               or l.started_at < to_timestamp(usage_buckets.until_ms / 1000.0))
    ),
    failures as (
        select x.b, x.m, x.k, x.p, jsonb_object_agg(x.f, x.n) as error_kinds
        from (select r.b, r.m, r.k, r.p, r.f, count(*) as n
              from r where r.f is not null
              group by r.b, r.m, r.k, r.p, r.f) as x
        group by x.b, x.m, x.k, x.p
    ),
    groups as (
        select r.b, r.m, r.k, r.p,
               count(*) as requests,
               count(r.f) as errors,
               coalesce(sum(r.prompt_tokens), 0)::bigint as prompt_tokens,
               coalesce(sum(r.candidates_tokens), 0)::bigint as candidates_tokens,
               coalesce(sum(r.thoughts_tokens), 0)::bigint as thoughts_tokens,
               coalesce(sum(r.cached_tokens), 0)::bigint as cached_tokens,
               coalesce(sum(r.total_tokens), 0)::bigint as total_tokens,
               coalesce(sum(r.latency_ms), 0)::bigint as latency_sum_ms,
               percentile_disc(0.5) within group (order by r.latency_ms)::bigint as latency_p50_ms,
               percentile_disc(0.95) within group (order by r.latency_ms)::bigint as latency_p95_ms,
               -- percentile_disc skips NULLs: the median of the records that have one.
               coalesce(percentile_disc(0.5) within group (order by r.ttfb_ms), 0)::bigint as ttfb_p50_ms,
               coalesce(percentile_disc(0.5) within group (order by r.overhead_us), 0)::bigint as overhead_p50_us,
               coalesce(sum(r.cost_usd), 0)::double precision as cost_usd
        from r
        group by r.b, r.m, r.k, r.p
    )
    select coalesce(jsonb_agg(to_jsonb(c)), '[]'::jsonb)
    from (
        select g.b as bucket_start_ms,
               g.m as model,
               g.k as upstream_key_id,
               g.p as proxy_key_id,
               g.requests, g.errors, g.prompt_tokens, g.candidates_tokens, g.thoughts_tokens,
               g.cached_tokens, g.total_tokens, g.latency_sum_ms, g.latency_p50_ms,
               g.latency_p95_ms, g.ttfb_p50_ms, g.overhead_p50_us, g.cost_usd,
               coalesce(f.error_kinds, '{}'::jsonb) as error_kinds
        from groups as g
        left join failures as f
               on f.b = g.b
              and f.m is not distinct from g.m
              and f.k is not distinct from g.k
              and f.p is not distinct from g.p
    ) as c;
$$;

revoke all on function public.usage_buckets(bigint, bigint, bigint, boolean, boolean, boolean)
    from public, anon, authenticated;
grant execute on function public.usage_buckets(bigint, bigint, bigint, boolean, boolean, boolean)
    to service_role;
