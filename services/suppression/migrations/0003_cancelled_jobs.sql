-- A queued import job can be cancelled by its owner.
ALTER TABLE suppression.import_jobs DROP CONSTRAINT import_jobs_state_check;
ALTER TABLE suppression.import_jobs ADD CONSTRAINT import_jobs_state_check
    CHECK (state IN ('uploading', 'queued', 'running', 'done', 'failed', 'cancelled'));
