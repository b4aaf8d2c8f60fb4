-- 0003: the submitter's trace context, which every task of the run carries (W3C traceparent).

ALTER TABLE runs ADD COLUMN trace jsonb;
