-- Undoes 0011: drops the KPI views (repeatable/kpi_views.sql creates them again on the next migrate).
DROP VIEW IF EXISTS vw_pending_approvals_aging;
DROP VIEW IF EXISTS vw_tat_alerts_by_month;
DROP VIEW IF EXISTS vw_tat_compliance_by_level;
DROP VIEW IF EXISTS vw_approver_performance;
DROP VIEW IF EXISTS vw_request_status_summary;
DROP VIEW IF EXISTS vw_request_volume_by_month;
