-- The roles Supabase creates in every project, for plain PostgreSQL (tests, self-hosted):
-- the migrations grant to and revoke from them, so they must exist first.
--
-- Safe to run anywhere, any number of times, also concurrently: a role that exists is
-- left as it is (on Supabase nothing happens), and a race with another session creating
-- the same role is ignored. Needs a superuser on plain PostgreSQL (BYPASSRLS).
do $$
declare
    spec   text[];
    member text;
begin
    foreach spec slice 1 in array array[
        ['anon',          'nologin noinherit'],
        ['authenticated', 'nologin noinherit'],
        -- Supabase's service role skips row level security; the proxy acts as it.
        ['service_role',  'nologin noinherit bypassrls'],
        -- PostgREST logs in as authenticator and switches to one of the three.
        ['authenticator', 'login noinherit']
    ] loop
        if not exists (select 1 from pg_roles where rolname = spec[1]) then
            begin
                execute format('create role %I %s', spec[1], spec[2]);
            exception when duplicate_object or unique_violation then
                null; -- another session created it a moment ago
            end;
        end if;
    end loop;

    foreach member in array array['anon', 'authenticated', 'service_role'] loop
        if not pg_has_role('authenticator', member, 'member') then
            begin
                execute format('grant %I to authenticator', member);
            exception when duplicate_object or unique_violation then
                null;
            end;
        end if;
    end loop;
end
$$;
