-- Digitized: every archived record with the time it was archived (records.updated_at, written
-- when the record is archived; a re-run of an archived record leaves the row alone). A report
-- counts the rows archived before its quarter's end, and those inside the quarter for the pace.
CREATE VIEW progress_archived AS
SELECT
    agency_code,
    issue_year,
    updated_at AS archived_at,
    page_count
FROM progress_records
WHERE status = 'archived'
