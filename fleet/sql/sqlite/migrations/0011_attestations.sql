-- 0011: a receipt's signed attestation (issue 21): the DSSE envelope of its in-toto statement,
-- from its receipt_recorded event (NULL for receipts recorded with trust off or before 0011).
ALTER TABLE receipts ADD COLUMN attestation TEXT;

-- what replay would put there: the attestation of each receipt's receipt_recorded event (none
-- before this version signed, so this finds nothing in a store that was never downgraded)
UPDATE receipts SET attestation = (
    SELECT json_extract(e.data, '$.attestation') FROM events e
    WHERE e.run_id = receipts.run_id AND e.type = 'receipt_recorded'
      AND json_extract(e.data, '$.receipt.receipt_id') = receipts.receipt_id
      AND json_extract(e.data, '$.receipt.task_id') = receipts.task_id);
