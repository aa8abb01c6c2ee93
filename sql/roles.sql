-- PostgreSQL group roles of the warehouse (NOLOGIN; log-in users are granted one, see README).
--
--   digitize_loader     what the pipeline (CLI, Airflow tasks) connects as: reads and writes the
--                       tables; no DDL, so schema changes stay with the owner (`digitize migrate`).
--   digitize_reporting  what the progress page, the quarterly report and any BI tool connect as:
--                       the aggregate progress views and the agency registry, and of records
--                       only the five columns the signed count reads. Nothing of pages, files,
--                       validation_results, validation_runs, events or batches, so no holder
--                       name or id, OCR text or path can be read; nor of the access log, the
--                       read API's tokens or the search index (access_log, api_tokens,
--                       search_documents, search_words: migration 0010).
--
-- Idempotent: run it again after every migration, as the owner of the tables, so that new tables
-- reach the loader (`digitize roles apply`, or `psql "$URL" -v ON_ERROR_STOP=1 -f sql/roles.sql`).
-- The warehouse lives in the schema public. No percent sign in this file: it is run through a
-- DB-API driver that reads one as a parameter marker.

DO $$
BEGIN
    CREATE ROLE digitize_loader NOLOGIN;
EXCEPTION WHEN duplicate_object THEN
    NULL;  -- created before (or by a concurrent run): its grants are refreshed below
END
$$;

DO $$
BEGIN
    CREATE ROLE digitize_reporting NOLOGIN;
EXCEPTION WHEN duplicate_object THEN
    NULL;
END
$$;

GRANT USAGE ON SCHEMA public TO digitize_loader, digitize_reporting;

-- The loader: every table and view (upserts, the deletes of a record's pages on a re-run, the
-- Alembic version it checks before each run) and the sequences behind the id columns.
GRANT SELECT, INSERT, UPDATE, DELETE ON ALL TABLES IN SCHEMA public TO digitize_loader;
GRANT USAGE, SELECT, UPDATE ON ALL SEQUENCES IN SCHEMA public TO digitize_loader;

-- Reporting: nothing, then the aggregates. A view is read with its owner's rights, so the views
-- work although the tables under them are closed to this role.
REVOKE ALL ON ALL TABLES IN SCHEMA public FROM digitize_reporting;
REVOKE ALL ON ALL SEQUENCES IN SCHEMA public FROM digitize_reporting;
GRANT SELECT ON progress_inventory, progress_archived, progress_quarantine, agencies
    TO digitize_reporting;
-- The report's "Đã ký số" counts signed records per agency and issue year: the columns it reads
-- and nothing else of records (no holder, no text, no path; SELECT * stays refused). A view
-- would need a migration of its own: the views above are made from sql/views by migration 0005,
-- before the signature columns exist.
GRANT SELECT (agency_code, issued_on, status, updated_at, signed_at) ON records
    TO digitize_reporting;
