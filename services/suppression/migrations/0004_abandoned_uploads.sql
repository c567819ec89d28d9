-- When an upload last made progress: one that stalls (its list service died, its client went
-- away without closing) is failed by the workers and its chunks freed.
ALTER TABLE suppression.import_jobs ADD COLUMN touched timestamptz NOT NULL DEFAULT now();
CREATE INDEX import_jobs_uploading ON suppression.import_jobs (touched)
    WHERE state = 'uploading';
