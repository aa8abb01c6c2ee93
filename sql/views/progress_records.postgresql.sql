-- One row per record for the progress figures, without personal data (holder name / id) and
-- without the OCR text.
CREATE VIEW progress_records AS
SELECT
    id,
    agency_code,
    record_id,
    batch_pk,
    status,
    reason,
    page_count,
    updated_at,
    CAST(EXTRACT(YEAR FROM issued_on) AS INTEGER) AS issue_year
FROM records
