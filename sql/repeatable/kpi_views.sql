-- The KPI dashboard's reporting views, as they are now.
--
-- A repeatable migration: runner runs it after the numbered files, and again whenever
-- it changes, so a view is changed by editing it here. 0011 created these views first
-- and stays as it was applied. CREATE OR REPLACE VIEW can add columns at the end of a
-- view but not drop, rename or retype one: for that, put `DROP VIEW IF EXISTS <view>;`
-- above its CREATE (grants on the view then need to be given again).
--
-- Soft-deleted requests are left out everywhere. Hours are calendar hours between
-- timestamps; percentages are rounded to 2 decimals.

-- Requests per month (of submission, or creation for drafts), status and priority.
CREATE OR REPLACE VIEW vw_request_volume_by_month AS
SELECT
    date_trunc('month', coalesce(r.submission_date, r.created_at))::date AS month,
    r.status,
    r.priority,
    count(*)                                                            AS request_count,
    count(*) FILTER (WHERE r.tat_breached)                              AS breached_count,
    round(avg(extract(epoch FROM (r.closure_date - r.submission_date)) / 3600)
          FILTER (WHERE r.closure_date IS NOT NULL), 2)                 AS avg_cycle_hours
FROM workflow_requests r
WHERE NOT r.is_deleted
GROUP BY 1, 2, 3;

-- Current counts per status (the dashboard's headline tiles).
CREATE OR REPLACE VIEW vw_request_status_summary AS
SELECT
    r.status,
    count(*)                                                        AS request_count,
    count(*) FILTER (WHERE r.priority = 'EXPRESS')                  AS express_count,
    count(*) FILTER (WHERE r.tat_breached)                          AS breached_count,
    min(r.submission_date)                                          AS oldest_submission
FROM workflow_requests r
WHERE NOT r.is_deleted
GROUP BY r.status;

-- Per approver: workload, decisions, speed and TAT compliance.
CREATE OR REPLACE VIEW vw_approver_performance AS
SELECT
    l.approver_id,
    max(l.approver_name)                                            AS approver_name,
    max(l.approver_email)                                           AS approver_email,
    count(*)                                                        AS levels_assigned,
    count(*) FILTER (WHERE l.status = 'APPROVED')                   AS approved_count,
    count(*) FILTER (WHERE l.status = 'REJECTED')                   AS rejected_count,
    count(*) FILTER (WHERE l.status IN ('PENDING', 'IN_PROGRESS')
                       AND l.level_start_time IS NOT NULL)          AS pending_count,
    round(avg(extract(epoch FROM (l.level_end_time - l.level_start_time)) / 3600)
          FILTER (WHERE l.level_end_time IS NOT NULL), 2)           AS avg_response_hours,
    count(*) FILTER (WHERE l.level_end_time IS NOT NULL
                       AND NOT l.tat_breached)                      AS within_tat_count,
    count(*) FILTER (WHERE l.tat_breached)                          AS breached_count,
    round(100.0 * count(*) FILTER (WHERE l.level_end_time IS NOT NULL AND NOT l.tat_breached)
          / nullif(count(*) FILTER (WHERE l.level_end_time IS NOT NULL), 0), 2)
                                                                    AS tat_compliance_pct
FROM approval_levels l
JOIN workflow_requests r ON r.request_id = l.request_id
WHERE NOT r.is_deleted
GROUP BY l.approver_id;

-- TAT compliance per level number (are later levels slower?).
CREATE OR REPLACE VIEW vw_tat_compliance_by_level AS
SELECT
    l.level_number,
    count(*)                                                        AS levels_total,
    count(*) FILTER (WHERE l.level_end_time IS NOT NULL)            AS levels_completed,
    count(*) FILTER (WHERE l.level_end_time IS NOT NULL
                       AND NOT l.tat_breached)                      AS completed_within_tat,
    count(*) FILTER (WHERE l.tat_breached)                          AS breached_count,
    round(100.0 * count(*) FILTER (WHERE l.level_end_time IS NOT NULL AND NOT l.tat_breached)
          / nullif(count(*) FILTER (WHERE l.level_end_time IS NOT NULL), 0), 2)
                                                                    AS tat_compliance_pct,
    round(avg(l.tat_hours), 2)                                      AS avg_tat_hours,
    round(avg(l.elapsed_hours) FILTER (WHERE l.level_end_time IS NOT NULL), 2)
                                                                    AS avg_elapsed_hours
FROM approval_levels l
JOIN workflow_requests r ON r.request_id = l.request_id
WHERE NOT r.is_deleted
GROUP BY l.level_number;

-- Alerts per month and type: how often approvers get warned and breach.
CREATE OR REPLACE VIEW vw_tat_alerts_by_month AS
SELECT
    date_trunc('month', coalesce(a.alert_sent_at, a.created_at))::date AS month,
    a.alert_type,
    count(*)                                                        AS alert_count,
    count(*) FILTER (WHERE a.notification_sent)                     AS sent_count,
    count(*) FILTER (WHERE a.was_completed_on_time)                 AS completed_on_time_count,
    count(DISTINCT a.approver_id)                                   AS approvers_alerted
FROM tat_alerts a
GROUP BY 1, 2;

-- Levels waiting for action now, with how much of their TAT is used.
CREATE OR REPLACE VIEW vw_pending_approvals_aging AS
SELECT
    r.request_id,
    r.request_number,
    r.title,
    r.priority,
    l.level_id,
    l.level_number,
    l.approver_id,
    l.approver_name,
    l.tat_hours,
    l.level_start_time,
    l.tat_due_time,
    round(extract(epoch FROM (now() - l.level_start_time)) / 3600, 2) AS hours_waiting,
    l.tat_percentage_used,
    l.tat_breached
FROM approval_levels l
JOIN workflow_requests r ON r.request_id = l.request_id
WHERE NOT r.is_deleted
  AND r.status IN ('PENDING', 'IN_PROGRESS')
  AND l.level_number = r.current_level
  AND l.status IN ('PENDING', 'IN_PROGRESS')
  AND l.level_start_time IS NOT NULL;
