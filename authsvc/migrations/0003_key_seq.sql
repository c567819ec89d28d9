-- A key's place in the revocation log is read with the key (store.KEY_COLUMNS: the seq of
-- its last entry), so decisions can say how new their data is; this keeps that read to one
-- index probe per key.
CREATE INDEX revocations_key_seq ON auth.revocations (key_id, seq);
