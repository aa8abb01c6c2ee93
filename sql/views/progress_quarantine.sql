-- Held in quarantine (cần xử lý), with the reason and when the hold began and ended. A record is
-- held at time T when held_at < T and (released_at IS NULL OR released_at >= T).
-- First part: records in quarantine now (held since their last update).
-- Second part: records archived since then, after a quarantine of the same batch: held from
-- the first of those quarantines (events are append-only: a record held twice counts once, with
-- its first reason) until they were archived, so a later fix does not rewrite an earlier quarter.
CREATE VIEW progress_quarantine AS
SELECT
    r.agency_code,
    r.issue_year,
    r.reason,
    r.updated_at AS held_at,
    CAST(NULL AS TIMESTAMP) AS released_at
FROM progress_records r
WHERE r.status = 'quarantined'
UNION ALL
SELECT
    r.agency_code,
    r.issue_year,
    e.outcome AS reason,
    e.at AS held_at,
    r.updated_at AS released_at
FROM progress_records r
JOIN events e
  ON e.batch_pk = r.batch_pk AND e.record_id = r.record_id AND e.stage = 'quarantine'
WHERE r.status = 'archived' AND e.at < r.updated_at
  AND e.id = (SELECT MIN(f.id) FROM events f
              WHERE f.batch_pk = r.batch_pk AND f.record_id = r.record_id
                AND f.stage = 'quarantine')
