DROP INDEX url_creations_newest; DROP INDEX url_creations_uncreated;
DROP INDEX url_creations_deleted;
