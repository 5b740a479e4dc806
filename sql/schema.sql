-- Schema written by runner dump from PostgreSQL 18, tracking table public.runner_migrations.
-- `runner load` loads it into an empty database, which is then up to date with the files listed at the end;
-- `runner dump --check` tells whether the files still build this schema.

--
-- runner's tracking tables
--

CREATE TABLE IF NOT EXISTS "public"."runner_migrations" (
    version      bigint PRIMARY KEY,
    name         text NOT NULL,
    checksum     text NOT NULL,
    executed_at  timestamptz NOT NULL DEFAULT now(),
    execution_ms integer NOT NULL,
    applied_by   text NOT NULL DEFAULT session_user,
    sql_checksum text,
    down_checksum text
);
COMMENT ON TABLE "public"."runner_migrations" IS 'Migrations applied by runner: one row per file.';
CREATE TABLE IF NOT EXISTS "public"."runner_migrations_repeatable" (
    name         text PRIMARY KEY,
    checksum     text NOT NULL,
    executed_at  timestamptz NOT NULL DEFAULT now(),
    execution_ms integer NOT NULL,
    applied_by   text NOT NULL DEFAULT session_user
);

--
-- PostgreSQL database dump
--

SET statement_timeout = 0;
SET lock_timeout = 0;
SET idle_in_transaction_session_timeout = 0;
SET client_encoding = 'UTF8';
SET standard_conforming_strings = on;
SELECT pg_catalog.set_config('search_path', '', false);
SET check_function_bodies = false;
SET xmloption = content;
SET client_min_messages = warning;
SET row_security = off;

--
-- Name: approval_status; Type: TYPE; Schema: public; Owner: -
--

CREATE TYPE public.approval_status AS ENUM (
    'PENDING',
    'IN_PROGRESS',
    'APPROVED',
    'REJECTED'
);

--
-- Name: participant_type; Type: TYPE; Schema: public; Owner: -
--

CREATE TYPE public.participant_type AS ENUM (
    'INITIATOR',
    'APPROVER',
    'SPECTATOR',
    'CONSULTATION'
);

--
-- Name: tat_alert_type; Type: TYPE; Schema: public; Owner: -
--

CREATE TYPE public.tat_alert_type AS ENUM (
    'TAT_50',
    'TAT_75',
    'TAT_100'
);

--
-- Name: workflow_priority; Type: TYPE; Schema: public; Owner: -
--

CREATE TYPE public.workflow_priority AS ENUM (
    'STANDARD',
    'EXPRESS'
);

--
-- Name: workflow_status; Type: TYPE; Schema: public; Owner: -
--

CREATE TYPE public.workflow_status AS ENUM (
    'DRAFT',
    'PENDING',
    'IN_PROGRESS',
    'APPROVED',
    'REJECTED',
    'CLOSED',
    'CANCELLED'
);

--
-- Name: is_holiday(date); Type: FUNCTION; Schema: public; Owner: -
--

CREATE FUNCTION public.is_holiday(d date) RETURNS boolean
    LANGUAGE sql STABLE
    AS $$
    SELECT EXISTS (
        SELECT 1 FROM holidays h
        WHERE h.is_active
          AND (h.holiday_date = d
               OR (h.is_recurring
                   AND h.holiday_date <= d
                   AND extract(month FROM h.holiday_date) = extract(month FROM d)
                   AND extract(day FROM h.holiday_date) = extract(day FROM d)))
    )
$$;

--
-- Name: set_updated_at(); Type: FUNCTION; Schema: public; Owner: -
--

CREATE FUNCTION public.set_updated_at() RETURNS trigger
    LANGUAGE plpgsql
    AS $$
BEGIN
    NEW.updated_at := now();
    RETURN NEW;
END
$$;

SET default_tablespace = '';

SET default_table_access_method = heap;

--
-- Name: activities; Type: TABLE; Schema: public; Owner: -
--

CREATE TABLE public.activities (
    activity_id uuid DEFAULT gen_random_uuid() NOT NULL,
    request_id uuid NOT NULL,
    user_id uuid,
    user_name character varying(200),
    activity_type character varying(50) NOT NULL,
    activity_description text NOT NULL,
    severity character varying(10) DEFAULT 'INFO'::character varying NOT NULL,
    metadata jsonb DEFAULT '{}'::jsonb NOT NULL,
    ip_address inet,
    user_agent text,
    created_at timestamp with time zone DEFAULT now() NOT NULL,
    CONSTRAINT chk_activities_metadata_object CHECK ((jsonb_typeof(metadata) = 'object'::text)),
    CONSTRAINT chk_activities_severity CHECK (((severity)::text = ANY ((ARRAY['INFO'::character varying, 'WARNING'::character varying, 'ERROR'::character varying, 'CRITICAL'::character varying])::text[]))),
    CONSTRAINT chk_activities_type_format CHECK (((activity_type)::text ~ '^[a-z][a-z0-9_]*$'::text))
);

--
-- Name: admin_config; Type: TABLE; Schema: public; Owner: -
--

CREATE TABLE public.admin_config (
    config_id uuid DEFAULT gen_random_uuid() NOT NULL,
    config_key character varying(100) NOT NULL,
    config_category character varying(30) NOT NULL,
    config_value text NOT NULL,
    value_type character varying(10) NOT NULL,
    display_name character varying(200) NOT NULL,
    description text,
    default_value text,
    validation_rules jsonb DEFAULT '{}'::jsonb NOT NULL,
    is_editable boolean DEFAULT true NOT NULL,
    is_sensitive boolean DEFAULT false NOT NULL,
    requires_restart boolean DEFAULT false NOT NULL,
    sort_order integer DEFAULT 0 NOT NULL,
    last_modified_by uuid,
    created_at timestamp with time zone DEFAULT now() NOT NULL,
    updated_at timestamp with time zone DEFAULT now() NOT NULL,
    CONSTRAINT chk_admin_config_category CHECK (((config_category)::text = ANY ((ARRAY['TAT_SETTINGS'::character varying, 'WORKING_HOURS'::character varying, 'NOTIFICATION_RULES'::character varying, 'DOCUMENT_POLICY'::character varying, 'WORKFLOW'::character varying, 'SYSTEM'::character varying])::text[]))),
    CONSTRAINT chk_admin_config_key_format CHECK (((config_key)::text ~ '^[A-Z][A-Z0-9_]*$'::text)),
    CONSTRAINT chk_admin_config_validation_rules_object CHECK ((jsonb_typeof(validation_rules) = 'object'::text)),
    CONSTRAINT chk_admin_config_value_matches_type CHECK (
CASE value_type
    WHEN 'NUMBER'::text THEN (config_value ~ '^-?[0-9]+(\.[0-9]+)?$'::text)
    WHEN 'BOOLEAN'::text THEN (config_value = ANY (ARRAY['true'::text, 'false'::text]))
    WHEN 'TIME'::text THEN (config_value ~ '^([01][0-9]|2[0-3]):[0-5][0-9]$'::text)
    ELSE true
END),
    CONSTRAINT chk_admin_config_value_type CHECK (((value_type)::text = ANY ((ARRAY['STRING'::character varying, 'NUMBER'::character varying, 'BOOLEAN'::character varying, 'TIME'::character varying, 'JSON'::character varying])::text[])))
);

--
-- Name: approval_levels; Type: TABLE; Schema: public; Owner: -
--

CREATE TABLE public.approval_levels (
    level_id uuid DEFAULT gen_random_uuid() NOT NULL,
    request_id uuid NOT NULL,
    level_number integer NOT NULL,
    level_name character varying(100),
    approver_id uuid NOT NULL,
    approver_email character varying(255) NOT NULL,
    approver_name character varying(200) NOT NULL,
    tat_hours numeric(10,2) NOT NULL,
    status public.approval_status DEFAULT 'PENDING'::public.approval_status NOT NULL,
    level_start_time timestamp with time zone,
    level_end_time timestamp with time zone,
    comments text,
    rejection_reason text,
    is_final_approver boolean DEFAULT false NOT NULL,
    created_at timestamp with time zone DEFAULT now() NOT NULL,
    updated_at timestamp with time zone DEFAULT now() NOT NULL,
    tat_start_time timestamp with time zone,
    tat_due_time timestamp with time zone,
    elapsed_hours numeric(10,2) DEFAULT 0 NOT NULL,
    remaining_hours numeric(10,2),
    tat_percentage_used numeric(7,2) DEFAULT 0 NOT NULL,
    tat50_alert_sent boolean DEFAULT false NOT NULL,
    tat75_alert_sent boolean DEFAULT false NOT NULL,
    tat_breached boolean DEFAULT false NOT NULL,
    tat_breached_at timestamp with time zone,
    tat_last_checked_at timestamp with time zone,
    is_skipped boolean DEFAULT false NOT NULL,
    skipped_by uuid,
    skipped_at timestamp with time zone,
    skip_reason text,
    CONSTRAINT chk_approval_levels_breach_time CHECK (((NOT tat_breached) OR (tat_breached_at IS NOT NULL))),
    CONSTRAINT chk_approval_levels_decided_has_end CHECK (((status <> ALL (ARRAY['APPROVED'::public.approval_status, 'REJECTED'::public.approval_status])) OR (level_end_time IS NOT NULL))),
    CONSTRAINT chk_approval_levels_email CHECK (((approver_email)::text ~~ '%_@_%'::text)),
    CONSTRAINT chk_approval_levels_level_number CHECK (((level_number >= 1) AND (level_number <= 10))),
    CONSTRAINT chk_approval_levels_skip_fields_only_when_skipped CHECK ((is_skipped OR ((skipped_by IS NULL) AND (skipped_at IS NULL) AND (skip_reason IS NULL)))),
    CONSTRAINT chk_approval_levels_skipped_has_time CHECK (((NOT is_skipped) OR (skipped_at IS NOT NULL))),
    CONSTRAINT chk_approval_levels_tat_due CHECK (((tat_due_time IS NULL) OR (tat_start_time IS NULL) OR (tat_due_time > tat_start_time))),
    CONSTRAINT chk_approval_levels_tat_figures CHECK (((elapsed_hours >= (0)::numeric) AND (tat_percentage_used >= (0)::numeric))),
    CONSTRAINT chk_approval_levels_tat_positive CHECK ((tat_hours > (0)::numeric)),
    CONSTRAINT chk_approval_levels_times CHECK (((level_end_time IS NULL) OR (level_start_time IS NULL) OR (level_end_time >= level_start_time)))
);

--
-- Name: documents; Type: TABLE; Schema: public; Owner: -
--

CREATE TABLE public.documents (
    document_id uuid DEFAULT gen_random_uuid() NOT NULL,
    request_id uuid NOT NULL,
    uploaded_by uuid NOT NULL,
    file_name character varying(255) NOT NULL,
    original_file_name character varying(255) NOT NULL,
    mime_type character varying(100) NOT NULL,
    file_extension character varying(20),
    file_size bigint NOT NULL,
    file_path character varying(500) NOT NULL,
    storage_url character varying(1000),
    checksum_sha256 character(64),
    category character varying(20) DEFAULT 'SUPPORTING'::character varying NOT NULL,
    version integer DEFAULT 1 NOT NULL,
    parent_document_id uuid,
    is_deleted boolean DEFAULT false NOT NULL,
    download_count integer DEFAULT 0 NOT NULL,
    uploaded_at timestamp with time zone DEFAULT now() NOT NULL,
    updated_at timestamp with time zone DEFAULT now() NOT NULL,
    CONSTRAINT chk_documents_category CHECK (((category)::text = ANY ((ARRAY['SUPPORTING'::character varying, 'APPROVAL'::character varying, 'REFERENCE'::character varying, 'FINAL'::character varying, 'OTHER'::character varying])::text[]))),
    CONSTRAINT chk_documents_checksum CHECK ((checksum_sha256 ~ '^[0-9a-f]{64}$'::text)),
    CONSTRAINT chk_documents_download_count CHECK ((download_count >= 0)),
    CONSTRAINT chk_documents_file_size CHECK ((file_size > 0)),
    CONSTRAINT chk_documents_not_own_parent CHECK ((parent_document_id <> document_id)),
    CONSTRAINT chk_documents_version CHECK ((version >= 1))
);

--
-- Name: holidays; Type: TABLE; Schema: public; Owner: -
--

CREATE TABLE public.holidays (
    holiday_id uuid DEFAULT gen_random_uuid() NOT NULL,
    holiday_date date NOT NULL,
    holiday_name character varying(200) NOT NULL,
    description text,
    holiday_type character varying(20) DEFAULT 'ORGANIZATIONAL'::character varying NOT NULL,
    is_recurring boolean DEFAULT false NOT NULL,
    applies_to_locations text[],
    is_active boolean DEFAULT true NOT NULL,
    created_by uuid,
    created_at timestamp with time zone DEFAULT now() NOT NULL,
    updated_at timestamp with time zone DEFAULT now() NOT NULL,
    CONSTRAINT chk_holidays_name_not_blank CHECK ((btrim((holiday_name)::text) <> ''::text)),
    CONSTRAINT chk_holidays_type CHECK (((holiday_type)::text = ANY ((ARRAY['NATIONAL'::character varying, 'REGIONAL'::character varying, 'ORGANIZATIONAL'::character varying, 'OPTIONAL'::character varying])::text[])))
);

--
-- Name: participants; Type: TABLE; Schema: public; Owner: -
--

CREATE TABLE public.participants (
    participant_id uuid DEFAULT gen_random_uuid() NOT NULL,
    request_id uuid NOT NULL,
    user_id uuid NOT NULL,
    user_email character varying(255) NOT NULL,
    user_name character varying(200) NOT NULL,
    participant_type public.participant_type NOT NULL,
    can_comment boolean DEFAULT true NOT NULL,
    can_view_documents boolean DEFAULT true NOT NULL,
    can_download_documents boolean DEFAULT false NOT NULL,
    notification_enabled boolean DEFAULT true NOT NULL,
    added_by uuid,
    added_at timestamp with time zone DEFAULT now() NOT NULL,
    is_active boolean DEFAULT true NOT NULL,
    created_at timestamp with time zone DEFAULT now() NOT NULL,
    updated_at timestamp with time zone DEFAULT now() NOT NULL,
    CONSTRAINT chk_participants_download_needs_view CHECK (((NOT can_download_documents) OR can_view_documents)),
    CONSTRAINT chk_participants_email CHECK (((user_email)::text ~~ '%_@_%'::text))
);

--
-- Name: subscriptions; Type: TABLE; Schema: public; Owner: -
--

CREATE TABLE public.subscriptions (
    subscription_id uuid DEFAULT gen_random_uuid() NOT NULL,
    user_id uuid NOT NULL,
    endpoint text NOT NULL,
    p256dh text NOT NULL,
    auth text NOT NULL,
    user_agent text,
    expiration_time timestamp with time zone,
    last_used_at timestamp with time zone,
    failure_count integer DEFAULT 0 NOT NULL,
    created_at timestamp with time zone DEFAULT now() NOT NULL,
    updated_at timestamp with time zone DEFAULT now() NOT NULL,
    CONSTRAINT chk_subscriptions_endpoint_https CHECK ((endpoint ~~ 'https://%'::text)),
    CONSTRAINT chk_subscriptions_failure_count CHECK ((failure_count >= 0))
);

--
-- Name: tat_alerts; Type: TABLE; Schema: public; Owner: -
--

CREATE TABLE public.tat_alerts (
    alert_id uuid DEFAULT gen_random_uuid() NOT NULL,
    request_id uuid NOT NULL,
    level_id uuid NOT NULL,
    approver_id uuid NOT NULL,
    alert_type public.tat_alert_type NOT NULL,
    threshold_percentage smallint NOT NULL,
    tat_hours_allocated numeric(10,2) NOT NULL,
    tat_hours_elapsed numeric(10,2) NOT NULL,
    tat_hours_remaining numeric(10,2) NOT NULL,
    level_start_time timestamp with time zone NOT NULL,
    alert_due_time timestamp with time zone NOT NULL,
    expected_completion_time timestamp with time zone NOT NULL,
    alert_sent_at timestamp with time zone,
    alert_message text,
    notification_sent boolean DEFAULT false NOT NULL,
    notification_channels text[] DEFAULT '{}'::text[] NOT NULL,
    is_breached boolean DEFAULT false NOT NULL,
    was_completed_on_time boolean,
    completion_time timestamp with time zone,
    metadata jsonb DEFAULT '{}'::jsonb NOT NULL,
    created_at timestamp with time zone DEFAULT now() NOT NULL,
    CONSTRAINT chk_tat_alerts_breach CHECK (((alert_type <> 'TAT_100'::public.tat_alert_type) OR is_breached)),
    CONSTRAINT chk_tat_alerts_channels CHECK ((notification_channels <@ ARRAY['email'::text, 'push'::text, 'in_app'::text, 'sms'::text])),
    CONSTRAINT chk_tat_alerts_hours CHECK (((tat_hours_allocated > (0)::numeric) AND (tat_hours_elapsed >= (0)::numeric))),
    CONSTRAINT chk_tat_alerts_metadata_object CHECK ((jsonb_typeof(metadata) = 'object'::text)),
    CONSTRAINT chk_tat_alerts_sent_has_time CHECK (((NOT notification_sent) OR (alert_sent_at IS NOT NULL))),
    CONSTRAINT chk_tat_alerts_threshold CHECK ((((alert_type = 'TAT_50'::public.tat_alert_type) AND (threshold_percentage = 50)) OR ((alert_type = 'TAT_75'::public.tat_alert_type) AND (threshold_percentage = 75)) OR ((alert_type = 'TAT_100'::public.tat_alert_type) AND (threshold_percentage = 100)))),
    CONSTRAINT chk_tat_alerts_times CHECK ((expected_completion_time > level_start_time))
);

--
-- Name: workflow_requests; Type: TABLE; Schema: public; Owner: -
--

CREATE TABLE public.workflow_requests (
    request_id uuid DEFAULT gen_random_uuid() NOT NULL,
    request_number character varying(30) NOT NULL,
    title character varying(500) NOT NULL,
    description text,
    template_type character varying(20) DEFAULT 'CUSTOM'::character varying NOT NULL,
    template_id uuid,
    priority public.workflow_priority DEFAULT 'STANDARD'::public.workflow_priority NOT NULL,
    status public.workflow_status DEFAULT 'DRAFT'::public.workflow_status NOT NULL,
    initiator_id uuid NOT NULL,
    department character varying(100),
    current_level integer DEFAULT 1 NOT NULL,
    total_levels integer DEFAULT 1 NOT NULL,
    total_tat_hours numeric(10,2) DEFAULT 0 NOT NULL,
    submission_date timestamp with time zone,
    closure_date timestamp with time zone,
    conclusion_remark text,
    is_draft boolean DEFAULT true NOT NULL,
    is_deleted boolean DEFAULT false NOT NULL,
    metadata jsonb DEFAULT '{}'::jsonb NOT NULL,
    created_at timestamp with time zone DEFAULT now() NOT NULL,
    updated_at timestamp with time zone DEFAULT now() NOT NULL,
    tat_start_time timestamp with time zone,
    total_elapsed_hours numeric(10,2) DEFAULT 0 NOT NULL,
    tat_percentage_used numeric(7,2) DEFAULT 0 NOT NULL,
    tat_breached boolean DEFAULT false NOT NULL,
    tat_breached_level integer,
    CONSTRAINT chk_workflow_requests_breached_level CHECK (((tat_breached_level IS NULL) OR (tat_breached AND ((tat_breached_level >= 1) AND (tat_breached_level <= total_levels))))),
    CONSTRAINT chk_workflow_requests_closure_after_submission CHECK (((closure_date IS NULL) OR (submission_date IS NULL) OR (closure_date >= submission_date))),
    CONSTRAINT chk_workflow_requests_levels CHECK ((((total_levels >= 1) AND (total_levels <= 10)) AND ((current_level >= 1) AND (current_level <= total_levels)))),
    CONSTRAINT chk_workflow_requests_metadata_object CHECK ((jsonb_typeof(metadata) = 'object'::text)),
    CONSTRAINT chk_workflow_requests_submitted CHECK (((status = 'DRAFT'::public.workflow_status) OR (submission_date IS NOT NULL))),
    CONSTRAINT chk_workflow_requests_tat_figures CHECK (((total_elapsed_hours >= (0)::numeric) AND (tat_percentage_used >= (0)::numeric))),
    CONSTRAINT chk_workflow_requests_template_type CHECK (((template_type)::text = ANY ((ARRAY['CUSTOM'::character varying, 'TEMPLATE'::character varying])::text[]))),
    CONSTRAINT chk_workflow_requests_title_not_blank CHECK ((btrim((title)::text) <> ''::text)),
    CONSTRAINT chk_workflow_requests_total_tat CHECK ((total_tat_hours >= (0)::numeric))
);

--
-- Name: vw_approver_performance; Type: VIEW; Schema: public; Owner: -
--

CREATE VIEW public.vw_approver_performance AS
 SELECT l.approver_id,
    max((l.approver_name)::text) AS approver_name,
    max((l.approver_email)::text) AS approver_email,
    count(*) AS levels_assigned,
    count(*) FILTER (WHERE (l.status = 'APPROVED'::public.approval_status)) AS approved_count,
    count(*) FILTER (WHERE (l.status = 'REJECTED'::public.approval_status)) AS rejected_count,
    count(*) FILTER (WHERE ((l.status = ANY (ARRAY['PENDING'::public.approval_status, 'IN_PROGRESS'::public.approval_status])) AND (l.level_start_time IS NOT NULL))) AS pending_count,
    round(avg((EXTRACT(epoch FROM (l.level_end_time - l.level_start_time)) / (3600)::numeric)) FILTER (WHERE (l.level_end_time IS NOT NULL)), 2) AS avg_response_hours,
    count(*) FILTER (WHERE ((l.level_end_time IS NOT NULL) AND (NOT l.tat_breached))) AS within_tat_count,
    count(*) FILTER (WHERE l.tat_breached) AS breached_count,
    round(((100.0 * (count(*) FILTER (WHERE ((l.level_end_time IS NOT NULL) AND (NOT l.tat_breached))))::numeric) / (NULLIF(count(*) FILTER (WHERE (l.level_end_time IS NOT NULL)), 0))::numeric), 2) AS tat_compliance_pct
   FROM (public.approval_levels l
     JOIN public.workflow_requests r ON ((r.request_id = l.request_id)))
  WHERE (NOT r.is_deleted)
  GROUP BY l.approver_id;

--
-- Name: vw_pending_approvals_aging; Type: VIEW; Schema: public; Owner: -
--

CREATE VIEW public.vw_pending_approvals_aging AS
 SELECT r.request_id,
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
    round((EXTRACT(epoch FROM (now() - l.level_start_time)) / (3600)::numeric), 2) AS hours_waiting,
    l.tat_percentage_used,
    l.tat_breached
   FROM (public.approval_levels l
     JOIN public.workflow_requests r ON ((r.request_id = l.request_id)))
  WHERE ((NOT r.is_deleted) AND (r.status = ANY (ARRAY['PENDING'::public.workflow_status, 'IN_PROGRESS'::public.workflow_status])) AND (l.level_number = r.current_level) AND (l.status = ANY (ARRAY['PENDING'::public.approval_status, 'IN_PROGRESS'::public.approval_status])) AND (l.level_start_time IS NOT NULL));

--
-- Name: vw_request_status_summary; Type: VIEW; Schema: public; Owner: -
--

CREATE VIEW public.vw_request_status_summary AS
 SELECT status,
    count(*) AS request_count,
    count(*) FILTER (WHERE (priority = 'EXPRESS'::public.workflow_priority)) AS express_count,
    count(*) FILTER (WHERE tat_breached) AS breached_count,
    min(submission_date) AS oldest_submission
   FROM public.workflow_requests r
  WHERE (NOT is_deleted)
  GROUP BY status;

--
-- Name: vw_request_volume_by_month; Type: VIEW; Schema: public; Owner: -
--

CREATE VIEW public.vw_request_volume_by_month AS
 SELECT (date_trunc('month'::text, COALESCE(submission_date, created_at)))::date AS month,
    status,
    priority,
    count(*) AS request_count,
    count(*) FILTER (WHERE tat_breached) AS breached_count,
    round(avg((EXTRACT(epoch FROM (closure_date - submission_date)) / (3600)::numeric)) FILTER (WHERE (closure_date IS NOT NULL)), 2) AS avg_cycle_hours
   FROM public.workflow_requests r
  WHERE (NOT is_deleted)
  GROUP BY ((date_trunc('month'::text, COALESCE(submission_date, created_at)))::date), status, priority;

--
-- Name: vw_tat_alerts_by_month; Type: VIEW; Schema: public; Owner: -
--

CREATE VIEW public.vw_tat_alerts_by_month AS
 SELECT (date_trunc('month'::text, COALESCE(alert_sent_at, created_at)))::date AS month,
    alert_type,
    count(*) AS alert_count,
    count(*) FILTER (WHERE notification_sent) AS sent_count,
    count(*) FILTER (WHERE was_completed_on_time) AS completed_on_time_count,
    count(DISTINCT approver_id) AS approvers_alerted
   FROM public.tat_alerts a
  GROUP BY ((date_trunc('month'::text, COALESCE(alert_sent_at, created_at)))::date), alert_type;

--
-- Name: vw_tat_compliance_by_level; Type: VIEW; Schema: public; Owner: -
--

CREATE VIEW public.vw_tat_compliance_by_level AS
 SELECT l.level_number,
    count(*) AS levels_total,
    count(*) FILTER (WHERE (l.level_end_time IS NOT NULL)) AS levels_completed,
    count(*) FILTER (WHERE ((l.level_end_time IS NOT NULL) AND (NOT l.tat_breached))) AS completed_within_tat,
    count(*) FILTER (WHERE l.tat_breached) AS breached_count,
    round(((100.0 * (count(*) FILTER (WHERE ((l.level_end_time IS NOT NULL) AND (NOT l.tat_breached))))::numeric) / (NULLIF(count(*) FILTER (WHERE (l.level_end_time IS NOT NULL)), 0))::numeric), 2) AS tat_compliance_pct,
    round(avg(l.tat_hours), 2) AS avg_tat_hours,
    round(avg(l.elapsed_hours) FILTER (WHERE (l.level_end_time IS NOT NULL)), 2) AS avg_elapsed_hours
   FROM (public.approval_levels l
     JOIN public.workflow_requests r ON ((r.request_id = l.request_id)))
  WHERE (NOT r.is_deleted)
  GROUP BY l.level_number;

--
-- Name: work_note_attachments; Type: TABLE; Schema: public; Owner: -
--

CREATE TABLE public.work_note_attachments (
    attachment_id uuid DEFAULT gen_random_uuid() NOT NULL,
    note_id uuid NOT NULL,
    file_name character varying(255) NOT NULL,
    file_type character varying(100) NOT NULL,
    file_size bigint NOT NULL,
    file_path character varying(500) NOT NULL,
    storage_url character varying(1000),
    is_downloadable boolean DEFAULT true NOT NULL,
    download_count integer DEFAULT 0 NOT NULL,
    uploaded_at timestamp with time zone DEFAULT now() NOT NULL,
    CONSTRAINT chk_work_note_attachments_download_count CHECK ((download_count >= 0)),
    CONSTRAINT chk_work_note_attachments_file_size CHECK ((file_size > 0))
);

--
-- Name: work_notes; Type: TABLE; Schema: public; Owner: -
--

CREATE TABLE public.work_notes (
    note_id uuid DEFAULT gen_random_uuid() NOT NULL,
    request_id uuid NOT NULL,
    user_id uuid NOT NULL,
    user_name character varying(200) NOT NULL,
    user_role character varying(50),
    message text NOT NULL,
    message_type character varying(20) DEFAULT 'COMMENT'::character varying NOT NULL,
    is_priority boolean DEFAULT false NOT NULL,
    has_attachment boolean DEFAULT false NOT NULL,
    parent_note_id uuid,
    mentioned_users uuid[] DEFAULT '{}'::uuid[] NOT NULL,
    reactions jsonb DEFAULT '{}'::jsonb NOT NULL,
    is_edited boolean DEFAULT false NOT NULL,
    is_deleted boolean DEFAULT false NOT NULL,
    created_at timestamp with time zone DEFAULT now() NOT NULL,
    updated_at timestamp with time zone DEFAULT now() NOT NULL,
    CONSTRAINT chk_work_notes_message CHECK (((btrim(message) <> ''::text) AND (length(message) <= 10000))),
    CONSTRAINT chk_work_notes_message_type CHECK (((message_type)::text = ANY ((ARRAY['COMMENT'::character varying, 'QUESTION'::character varying, 'CLARIFICATION'::character varying, 'UPDATE'::character varying, 'SYSTEM'::character varying])::text[]))),
    CONSTRAINT chk_work_notes_not_own_parent CHECK ((parent_note_id <> note_id)),
    CONSTRAINT chk_work_notes_reactions_object CHECK ((jsonb_typeof(reactions) = 'object'::text))
);

--
-- Name: activities activities_pkey; Type: CONSTRAINT; Schema: public; Owner: -
--

ALTER TABLE ONLY public.activities
    ADD CONSTRAINT activities_pkey PRIMARY KEY (activity_id);

--
-- Name: admin_config admin_config_pkey; Type: CONSTRAINT; Schema: public; Owner: -
--

ALTER TABLE ONLY public.admin_config
    ADD CONSTRAINT admin_config_pkey PRIMARY KEY (config_id);

--
-- Name: approval_levels approval_levels_pkey; Type: CONSTRAINT; Schema: public; Owner: -
--

ALTER TABLE ONLY public.approval_levels
    ADD CONSTRAINT approval_levels_pkey PRIMARY KEY (level_id);

--
-- Name: documents documents_pkey; Type: CONSTRAINT; Schema: public; Owner: -
--

ALTER TABLE ONLY public.documents
    ADD CONSTRAINT documents_pkey PRIMARY KEY (document_id);

--
-- Name: holidays holidays_pkey; Type: CONSTRAINT; Schema: public; Owner: -
--

ALTER TABLE ONLY public.holidays
    ADD CONSTRAINT holidays_pkey PRIMARY KEY (holiday_id);

--
-- Name: participants participants_pkey; Type: CONSTRAINT; Schema: public; Owner: -
--

ALTER TABLE ONLY public.participants
    ADD CONSTRAINT participants_pkey PRIMARY KEY (participant_id);

--
-- Name: subscriptions subscriptions_pkey; Type: CONSTRAINT; Schema: public; Owner: -
--

ALTER TABLE ONLY public.subscriptions
    ADD CONSTRAINT subscriptions_pkey PRIMARY KEY (subscription_id);

--
-- Name: tat_alerts tat_alerts_pkey; Type: CONSTRAINT; Schema: public; Owner: -
--

ALTER TABLE ONLY public.tat_alerts
    ADD CONSTRAINT tat_alerts_pkey PRIMARY KEY (alert_id);

--
-- Name: admin_config uq_admin_config_key; Type: CONSTRAINT; Schema: public; Owner: -
--

ALTER TABLE ONLY public.admin_config
    ADD CONSTRAINT uq_admin_config_key UNIQUE (config_key);

--
-- Name: approval_levels uq_approval_levels_request_level; Type: CONSTRAINT; Schema: public; Owner: -
--

ALTER TABLE ONLY public.approval_levels
    ADD CONSTRAINT uq_approval_levels_request_level UNIQUE (request_id, level_number);

--
-- Name: holidays uq_holidays_date_name; Type: CONSTRAINT; Schema: public; Owner: -
--

ALTER TABLE ONLY public.holidays
    ADD CONSTRAINT uq_holidays_date_name UNIQUE (holiday_date, holiday_name);

--
-- Name: participants uq_participants_request_user; Type: CONSTRAINT; Schema: public; Owner: -
--

ALTER TABLE ONLY public.participants
    ADD CONSTRAINT uq_participants_request_user UNIQUE (request_id, user_id);

--
-- Name: subscriptions uq_subscriptions_endpoint; Type: CONSTRAINT; Schema: public; Owner: -
--

ALTER TABLE ONLY public.subscriptions
    ADD CONSTRAINT uq_subscriptions_endpoint UNIQUE (endpoint);

--
-- Name: tat_alerts uq_tat_alerts_level_type; Type: CONSTRAINT; Schema: public; Owner: -
--

ALTER TABLE ONLY public.tat_alerts
    ADD CONSTRAINT uq_tat_alerts_level_type UNIQUE (level_id, alert_type);

--
-- Name: workflow_requests uq_workflow_requests_number; Type: CONSTRAINT; Schema: public; Owner: -
--

ALTER TABLE ONLY public.workflow_requests
    ADD CONSTRAINT uq_workflow_requests_number UNIQUE (request_number);

--
-- Name: work_note_attachments work_note_attachments_pkey; Type: CONSTRAINT; Schema: public; Owner: -
--

ALTER TABLE ONLY public.work_note_attachments
    ADD CONSTRAINT work_note_attachments_pkey PRIMARY KEY (attachment_id);

--
-- Name: work_notes work_notes_pkey; Type: CONSTRAINT; Schema: public; Owner: -
--

ALTER TABLE ONLY public.work_notes
    ADD CONSTRAINT work_notes_pkey PRIMARY KEY (note_id);

--
-- Name: workflow_requests workflow_requests_pkey; Type: CONSTRAINT; Schema: public; Owner: -
--

ALTER TABLE ONLY public.workflow_requests
    ADD CONSTRAINT workflow_requests_pkey PRIMARY KEY (request_id);

--
-- Name: idx_activities_request_created; Type: INDEX; Schema: public; Owner: -
--

CREATE INDEX idx_activities_request_created ON public.activities USING btree (request_id, created_at DESC);

--
-- Name: idx_activities_type_created; Type: INDEX; Schema: public; Owner: -
--

CREATE INDEX idx_activities_type_created ON public.activities USING btree (activity_type, created_at DESC);

--
-- Name: idx_activities_user_created; Type: INDEX; Schema: public; Owner: -
--

CREATE INDEX idx_activities_user_created ON public.activities USING btree (user_id, created_at DESC) WHERE (user_id IS NOT NULL);

--
-- Name: idx_admin_config_category; Type: INDEX; Schema: public; Owner: -
--

CREATE INDEX idx_admin_config_category ON public.admin_config USING btree (config_category, sort_order);

--
-- Name: idx_approval_levels_approver; Type: INDEX; Schema: public; Owner: -
--

CREATE INDEX idx_approval_levels_approver ON public.approval_levels USING btree (approver_id, level_end_time DESC);

--
-- Name: idx_approval_levels_approver_open; Type: INDEX; Schema: public; Owner: -
--

CREATE INDEX idx_approval_levels_approver_open ON public.approval_levels USING btree (approver_id, level_start_time) WHERE (status = ANY (ARRAY['PENDING'::public.approval_status, 'IN_PROGRESS'::public.approval_status]));

--
-- Name: idx_approval_levels_breached; Type: INDEX; Schema: public; Owner: -
--

CREATE INDEX idx_approval_levels_breached ON public.approval_levels USING btree (tat_breached_at) WHERE tat_breached;

--
-- Name: idx_approval_levels_skipped; Type: INDEX; Schema: public; Owner: -
--

CREATE INDEX idx_approval_levels_skipped ON public.approval_levels USING btree (request_id, skipped_at) WHERE is_skipped;

--
-- Name: idx_approval_levels_tat_monitor; Type: INDEX; Schema: public; Owner: -
--

CREATE INDEX idx_approval_levels_tat_monitor ON public.approval_levels USING btree (tat_due_time) WHERE ((status = ANY (ARRAY['PENDING'::public.approval_status, 'IN_PROGRESS'::public.approval_status])) AND (tat_start_time IS NOT NULL) AND (NOT tat_breached));

--
-- Name: idx_documents_parent; Type: INDEX; Schema: public; Owner: -
--

CREATE INDEX idx_documents_parent ON public.documents USING btree (parent_document_id) WHERE (parent_document_id IS NOT NULL);

--
-- Name: idx_documents_request; Type: INDEX; Schema: public; Owner: -
--

CREATE INDEX idx_documents_request ON public.documents USING btree (request_id, uploaded_at DESC) WHERE (NOT is_deleted);

--
-- Name: idx_documents_uploaded_by; Type: INDEX; Schema: public; Owner: -
--

CREATE INDEX idx_documents_uploaded_by ON public.documents USING btree (uploaded_by);

--
-- Name: idx_holidays_active_date; Type: INDEX; Schema: public; Owner: -
--

CREATE INDEX idx_holidays_active_date ON public.holidays USING btree (holiday_date) WHERE is_active;

--
-- Name: idx_holidays_recurring_month_day; Type: INDEX; Schema: public; Owner: -
--

CREATE INDEX idx_holidays_recurring_month_day ON public.holidays USING btree (EXTRACT(month FROM holiday_date), EXTRACT(day FROM holiday_date)) WHERE (is_active AND is_recurring);

--
-- Name: idx_participants_user_active; Type: INDEX; Schema: public; Owner: -
--

CREATE INDEX idx_participants_user_active ON public.participants USING btree (user_id, participant_type) WHERE is_active;

--
-- Name: idx_subscriptions_user; Type: INDEX; Schema: public; Owner: -
--

CREATE INDEX idx_subscriptions_user ON public.subscriptions USING btree (user_id);

--
-- Name: idx_tat_alerts_approver; Type: INDEX; Schema: public; Owner: -
--

CREATE INDEX idx_tat_alerts_approver ON public.tat_alerts USING btree (approver_id, alert_sent_at DESC);

--
-- Name: idx_tat_alerts_breached; Type: INDEX; Schema: public; Owner: -
--

CREATE INDEX idx_tat_alerts_breached ON public.tat_alerts USING btree (alert_sent_at) WHERE is_breached;

--
-- Name: idx_tat_alerts_due; Type: INDEX; Schema: public; Owner: -
--

CREATE INDEX idx_tat_alerts_due ON public.tat_alerts USING btree (expected_completion_time) WHERE (NOT notification_sent);

--
-- Name: idx_tat_alerts_request; Type: INDEX; Schema: public; Owner: -
--

CREATE INDEX idx_tat_alerts_request ON public.tat_alerts USING btree (request_id, created_at);

--
-- Name: idx_work_note_attachments_note; Type: INDEX; Schema: public; Owner: -
--

CREATE INDEX idx_work_note_attachments_note ON public.work_note_attachments USING btree (note_id);

--
-- Name: idx_work_notes_mentioned_users; Type: INDEX; Schema: public; Owner: -
--

CREATE INDEX idx_work_notes_mentioned_users ON public.work_notes USING gin (mentioned_users);

--
-- Name: idx_work_notes_parent; Type: INDEX; Schema: public; Owner: -
--

CREATE INDEX idx_work_notes_parent ON public.work_notes USING btree (parent_note_id) WHERE (parent_note_id IS NOT NULL);

--
-- Name: idx_work_notes_request_created; Type: INDEX; Schema: public; Owner: -
--

CREATE INDEX idx_work_notes_request_created ON public.work_notes USING btree (request_id, created_at) WHERE (NOT is_deleted);

--
-- Name: idx_workflow_requests_created_at; Type: INDEX; Schema: public; Owner: -
--

CREATE INDEX idx_workflow_requests_created_at ON public.workflow_requests USING btree (created_at);

--
-- Name: idx_workflow_requests_initiator; Type: INDEX; Schema: public; Owner: -
--

CREATE INDEX idx_workflow_requests_initiator ON public.workflow_requests USING btree (initiator_id, created_at DESC) WHERE (NOT is_deleted);

--
-- Name: idx_workflow_requests_open; Type: INDEX; Schema: public; Owner: -
--

CREATE INDEX idx_workflow_requests_open ON public.workflow_requests USING btree (current_level) WHERE ((status = ANY (ARRAY['PENDING'::public.workflow_status, 'IN_PROGRESS'::public.workflow_status])) AND (NOT is_deleted));

--
-- Name: idx_workflow_requests_status; Type: INDEX; Schema: public; Owner: -
--

CREATE INDEX idx_workflow_requests_status ON public.workflow_requests USING btree (status, submission_date DESC) WHERE (NOT is_deleted);

--
-- Name: idx_workflow_requests_tat_breached; Type: INDEX; Schema: public; Owner: -
--

CREATE INDEX idx_workflow_requests_tat_breached ON public.workflow_requests USING btree (submission_date) WHERE (tat_breached AND (NOT is_deleted));

--
-- Name: admin_config trg_admin_config_updated_at; Type: TRIGGER; Schema: public; Owner: -
--

CREATE TRIGGER trg_admin_config_updated_at BEFORE UPDATE ON public.admin_config FOR EACH ROW EXECUTE FUNCTION public.set_updated_at();

--
-- Name: approval_levels trg_approval_levels_updated_at; Type: TRIGGER; Schema: public; Owner: -
--

CREATE TRIGGER trg_approval_levels_updated_at BEFORE UPDATE ON public.approval_levels FOR EACH ROW EXECUTE FUNCTION public.set_updated_at();

--
-- Name: documents trg_documents_updated_at; Type: TRIGGER; Schema: public; Owner: -
--

CREATE TRIGGER trg_documents_updated_at BEFORE UPDATE ON public.documents FOR EACH ROW EXECUTE FUNCTION public.set_updated_at();

--
-- Name: holidays trg_holidays_updated_at; Type: TRIGGER; Schema: public; Owner: -
--

CREATE TRIGGER trg_holidays_updated_at BEFORE UPDATE ON public.holidays FOR EACH ROW EXECUTE FUNCTION public.set_updated_at();

--
-- Name: participants trg_participants_updated_at; Type: TRIGGER; Schema: public; Owner: -
--

CREATE TRIGGER trg_participants_updated_at BEFORE UPDATE ON public.participants FOR EACH ROW EXECUTE FUNCTION public.set_updated_at();

--
-- Name: subscriptions trg_subscriptions_updated_at; Type: TRIGGER; Schema: public; Owner: -
--

CREATE TRIGGER trg_subscriptions_updated_at BEFORE UPDATE ON public.subscriptions FOR EACH ROW EXECUTE FUNCTION public.set_updated_at();

--
-- Name: work_notes trg_work_notes_updated_at; Type: TRIGGER; Schema: public; Owner: -
--

CREATE TRIGGER trg_work_notes_updated_at BEFORE UPDATE ON public.work_notes FOR EACH ROW EXECUTE FUNCTION public.set_updated_at();

--
-- Name: workflow_requests trg_workflow_requests_updated_at; Type: TRIGGER; Schema: public; Owner: -
--

CREATE TRIGGER trg_workflow_requests_updated_at BEFORE UPDATE ON public.workflow_requests FOR EACH ROW EXECUTE FUNCTION public.set_updated_at();

--
-- Name: activities activities_request_id_fkey; Type: FK CONSTRAINT; Schema: public; Owner: -
--

ALTER TABLE ONLY public.activities
    ADD CONSTRAINT activities_request_id_fkey FOREIGN KEY (request_id) REFERENCES public.workflow_requests(request_id) ON DELETE CASCADE;

--
-- Name: approval_levels approval_levels_request_id_fkey; Type: FK CONSTRAINT; Schema: public; Owner: -
--

ALTER TABLE ONLY public.approval_levels
    ADD CONSTRAINT approval_levels_request_id_fkey FOREIGN KEY (request_id) REFERENCES public.workflow_requests(request_id) ON DELETE CASCADE;

--
-- Name: documents documents_parent_document_id_fkey; Type: FK CONSTRAINT; Schema: public; Owner: -
--

ALTER TABLE ONLY public.documents
    ADD CONSTRAINT documents_parent_document_id_fkey FOREIGN KEY (parent_document_id) REFERENCES public.documents(document_id) ON DELETE SET NULL;

--
-- Name: documents documents_request_id_fkey; Type: FK CONSTRAINT; Schema: public; Owner: -
--

ALTER TABLE ONLY public.documents
    ADD CONSTRAINT documents_request_id_fkey FOREIGN KEY (request_id) REFERENCES public.workflow_requests(request_id) ON DELETE CASCADE;

--
-- Name: participants participants_request_id_fkey; Type: FK CONSTRAINT; Schema: public; Owner: -
--

ALTER TABLE ONLY public.participants
    ADD CONSTRAINT participants_request_id_fkey FOREIGN KEY (request_id) REFERENCES public.workflow_requests(request_id) ON DELETE CASCADE;

--
-- Name: tat_alerts tat_alerts_level_id_fkey; Type: FK CONSTRAINT; Schema: public; Owner: -
--

ALTER TABLE ONLY public.tat_alerts
    ADD CONSTRAINT tat_alerts_level_id_fkey FOREIGN KEY (level_id) REFERENCES public.approval_levels(level_id) ON DELETE CASCADE;

--
-- Name: tat_alerts tat_alerts_request_id_fkey; Type: FK CONSTRAINT; Schema: public; Owner: -
--

ALTER TABLE ONLY public.tat_alerts
    ADD CONSTRAINT tat_alerts_request_id_fkey FOREIGN KEY (request_id) REFERENCES public.workflow_requests(request_id) ON DELETE CASCADE;

--
-- Name: work_note_attachments work_note_attachments_note_id_fkey; Type: FK CONSTRAINT; Schema: public; Owner: -
--

ALTER TABLE ONLY public.work_note_attachments
    ADD CONSTRAINT work_note_attachments_note_id_fkey FOREIGN KEY (note_id) REFERENCES public.work_notes(note_id) ON DELETE CASCADE;

--
-- Name: work_notes work_notes_parent_note_id_fkey; Type: FK CONSTRAINT; Schema: public; Owner: -
--

ALTER TABLE ONLY public.work_notes
    ADD CONSTRAINT work_notes_parent_note_id_fkey FOREIGN KEY (parent_note_id) REFERENCES public.work_notes(note_id) ON DELETE CASCADE;

--
-- Name: work_notes work_notes_request_id_fkey; Type: FK CONSTRAINT; Schema: public; Owner: -
--

ALTER TABLE ONLY public.work_notes
    ADD CONSTRAINT work_notes_request_id_fkey FOREIGN KEY (request_id) REFERENCES public.workflow_requests(request_id) ON DELETE CASCADE;

--
-- PostgreSQL database dump complete
--

--
-- runner's tracking rows: the files this schema is the result of
--

INSERT INTO "public"."runner_migrations" (version, name, checksum, sql_checksum, down_checksum, execution_ms) VALUES
(1, '0001_create_workflow_requests.sql', 'sha256:4c343540ef8c810e8af7ea178fd8d81d0ed6711e580fc339e4d3c79cc54ad82f', 'sha256:14060b9a912e49d12fad4ecfe45ee28e90f9ecddb2a077d836b2b0790b4f117e', 'sha256:3446d4d1408dfb72be94c2ba10ea80aabf05796a058049553f451a611b36a287', 0),
(2, '0002_create_approval_levels.sql', 'sha256:804abd419d5a9976f81258abea300bb14d0b79c3beb646f7f861565e6b16d489', 'sha256:a4f4de1ce43575cd6135e7dfccd3dca0dd501f933b49eb6a26f1732e8733fdc6', 'sha256:426c6afc98e34a4429e1f7caf4fea3bb165d863de657069af3f07c392db09b4a', 0),
(3, '0003_create_participants.sql', 'sha256:8761bcc02c86ae95ff6b1885711486c41e42b58d282aedcea80857e12c8bf0b6', 'sha256:bc873a2f1502fd3f97f521a2292053b5232647a700c5a9044ee91bd5e1176475', 'sha256:19ca8a166cadd2b38c9fb1ca6ee2ec52065eb96857e7617ab382c86fce49ad98', 0),
(4, '0004_create_documents.sql', 'sha256:6a6ebd1078e52917d6feed75ccbdbf1768b8b309642c03ad00fbaaa8384190bc', 'sha256:c4c042edcf00a40cf49c72f00ab038d39ca93c6ff3d3cefb47caf6eb6a4322fb', 'sha256:127b389f03217d904f9dd1def8a97edfb3a57f0840ad25b6ada11ca16b635ffc', 0),
(5, '0005_create_subscriptions.sql', 'sha256:52ee2e6ed9962ef2ff78e4109b4cc5591e8c6ee04ce91aff2d1a7f0a38ed20b6', 'sha256:16e5800d3022faa01415de6f55c78804b941bc6e69b55a4ae477db66aab4b22f', 'sha256:3c7b9b8f6c9aeeb8ad7fc64ef384d4078bd89674f734d2222c3649020de7329a', 0),
(6, '0006_create_activities.sql', 'sha256:9abc6d3c7e8032580001369025db444a45e324d3ee2b18543e3f085463ce06ec', 'sha256:e6fce06f985be5accca60e79c71dd473070cc20b8823fc0aeff30a992d439a24', 'sha256:894f058a8432d2ac862d497d68bce0689757ff9151c7cb4b7929ffddf78d1e00', 0),
(7, '0007_create_work_notes.sql', 'sha256:f1b95a1c2e6d51031cca4cc4b0941a283e44c7e970e81fe6f2fb8f213b3a3ccc', 'sha256:9e61a6945848afb1c6d3a3b1370a9117c50ea88a2c75191ecbcc977c83e436c0', 'sha256:acc112df7d6ba380b3803c43ec7fe7b38c5d2c690211698563805564c2dfba52', 0),
(8, '0008_create_work_note_attachments.sql', 'sha256:c5121812383ac74428b7e84a2b7d833aa87b03464d1241ba142c185bfa9f21fc', 'sha256:64655218b514ea54b92fa9d9102ca468d341ebcf0e177045e82fd24c063b4c37', 'sha256:afbfc31a436109c23a11fed9623ffccc7f6025e3d1a22fd12470027b868c4ca1', 0),
(9, '0009_add_tat_alert_fields.sql', 'sha256:c9cb35a5dd72f3b4342dfceae628998ccf2ffd5eee9cbb058f4d41da06a3164b', 'sha256:6da65b561df7532a3c299c390fbb99521c48905b4a5733bda7c53e6ed5bef6ad', 'sha256:4c99f48f8d169cb4c7579922a25adc8b329fc89c81613f29ddb8183dcaf00627', 0),
(10, '0010_create_tat_alerts.sql', 'sha256:fcf0a6f2d2ab486f8a680e281b2dee60f180de42eee954e37d8593e69dbdf689', 'sha256:9157ddddab043110d4a8e074f0a235becc14acda2ed1cdfcb4683de202241528', 'sha256:6854104df7c1ccfbc66c5468397c615c03a6afe69358f9bfa75974b4f58cebf1', 0),
(11, '0011_create_kpi_views.sql', 'sha256:d152cce384976afa1f3fc35d5c52bf39ea180ea8d454f0b9b712289cf84d5e72', 'sha256:d6d3dc2b8f10d7cc006854e1911fb816a7cb049c21ff5b8bf33537059a0edec2', 'sha256:4807644d788a727b86dc97ef10359cee17aa0696af32b645cc7cccfa56afc7fb', 0),
(12, '0012_create_holidays.sql', 'sha256:9934823a57909c755d78dcdd357bd06c534b20ae90d8e7c8d99457ec0743bb6e', 'sha256:cd22ee5549cbaff95c1787286e0ed6053b31ab5e35c6478819d342d262c8079f', 'sha256:d037fa02cd04d58171907827843647cdfc728a56ecfae0409edbf9cb1f75dff6', 0),
(13, '0013_create_admin_config.sql', 'sha256:007fc8a6e04304c5d4f43ec152ee27c11b0eedbfe08da20846d25fda231973af', 'sha256:fce5d73c1c197dd1330484bf5448e43e5dcf918dd6376705a27c296f1bf27934', 'sha256:e82d4f49d19bb73d5c11cf69b5e209754c97579be94bebd293169ee1028172df', 0),
(14, '0014_add_skip_fields_to_approval_levels.sql', 'sha256:a964dc4cd01e57c0f45da9f6584323eaa8eeb8a16133af92e4800d4cfbe7fe4f', 'sha256:176030737f42ef0ddc3a84bd08dc043210eaa33c341ddd09a1f2e606f8fafd68', 'sha256:e9487992b782831336d79b1ea5c65a9aad34d9d5085d88793858c335055925b6', 0);

INSERT INTO "public"."runner_migrations_repeatable" (name, checksum, execution_ms) VALUES
('repeatable/kpi_views.sql', 'sha256:54fdeedeffd759c7b958c3f037111e383954eda93e085a388602532cfa52d993', 0);
