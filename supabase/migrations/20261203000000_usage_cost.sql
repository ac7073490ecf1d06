-- Cost for SQL users. The proxy reads usage_buckets (cost_usd since the governance
-- migration); usage_daily and usage_summary keep their columns, because every file here
-- must stay re-runnable in order (psql users run them twice) and the first one would
-- then have to shrink a view or change a function's result. Costs per day come from
-- this view instead, which also splits by client key.

create or replace view public.usage_cost_daily with (security_invoker = true) as
select (l.started_at at time zone 'UTC')::date as day,
       l.model,
       l.answered_key_id as key_id,
       l.proxy_key_id,
       count(*) as requests,
       coalesce(sum(l.total_tokens), 0)::bigint as total_tokens,
       coalesce(sum(l.cost_usd), 0)::double precision as cost_usd
from public.request_logs as l
group by 1, 2, 3, 4;

-- Access as the first migration set it for usage_daily: service_role alone (security
-- invoker, so RLS on request_logs applies).
revoke all on table public.usage_cost_daily from public, anon, authenticated;
grant select on table public.usage_cost_daily to service_role;
