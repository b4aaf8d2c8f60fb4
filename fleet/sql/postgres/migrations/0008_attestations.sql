-- 0008: a receipt's signed attestation (issue 21): the DSSE envelope of its in-toto statement,
-- from its receipt_recorded event (NULL for receipts recorded with trust off or before 0008).
ALTER TABLE receipts ADD COLUMN attestation jsonb;
