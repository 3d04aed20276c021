-- Every version of a final monthly report (a correction issues the next, with what changed);
-- monthly_reports holds the latest.
ALTER TABLE monthly_reports ADD COLUMN version INTEGER NOT NULL DEFAULT 1;
CREATE TABLE report_versions (
    service       TEXT NOT NULL,
    period        TEXT NOT NULL,
    version       INTEGER NOT NULL,
    issued_ns     BIGINT NOT NULL,
    report        JSONB NOT NULL,
    PRIMARY KEY (service, period, version)
);
INSERT INTO report_versions (service, period, version, issued_ns, report)
    SELECT service, period, 1, 0, report FROM monthly_reports WHERE complete;
