-- Inventoried (kiểm đếm): still-valid paper results per agency and issue year, all procedures
-- together. The denominator of the percentages and targets.
CREATE VIEW progress_inventory AS
SELECT
    agency_code,
    issue_year,
    SUM(still_valid_count) AS still_valid,
    COUNT(*) AS procedures
FROM inventory
GROUP BY agency_code, issue_year
