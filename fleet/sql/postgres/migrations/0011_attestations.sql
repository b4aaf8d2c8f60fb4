-- 0011: a receipt's signed attestation (issue 21): the DSSE envelope of its in-toto statement,
-- from its receipt_recorded event (NULL for receipts recorded with trust off or before 0011).
ALTER TABLE receipts ADD COLUMN attestation jsonb;

-- what replay would put there: the attestation of each receipt's receipt_recorded event (none
-- before this version signed, so this finds nothing in a store that was never downgraded)
UPDATE receipts r SET attestation = e.data -> 'attestation'
FROM events e
WHERE e.run_id = r.run_id AND e.type = 'receipt_recorded'
  AND e.data -> 'receipt' ->> 'receipt_id' = r.receipt_id
  AND e.data -> 'receipt' ->> 'task_id' = r.task_id
  AND jsonb_typeof(e.data -> 'attestation') = 'object';
