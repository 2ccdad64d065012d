DROP TABLE url_creations; DROP TABLE clicks;
