-- Per link: clicks, bot clicks and unique visitors per hour and per day,
-- and clicks per day and dimension value (dimension: the index in
-- Dimension::ALL), built from the clicks already stored.
-- `clicks_by_visitor` answers "has this visitor a click of the link in
-- this hour (day)".
CREATE TABLE click_hours (
    shortener_url_id BLOB NOT NULL, hour INTEGER NOT NULL,
    clicks INTEGER NOT NULL, bots INTEGER NOT NULL, uniques INTEGER NOT NULL,
    first_at INTEGER NOT NULL,
    PRIMARY KEY (shortener_url_id, hour)
) WITHOUT ROWID;
CREATE TABLE click_days (
    shortener_url_id BLOB NOT NULL, day INTEGER NOT NULL,
    clicks INTEGER NOT NULL, bots INTEGER NOT NULL, uniques INTEGER NOT NULL,
    PRIMARY KEY (shortener_url_id, day)
) WITHOUT ROWID;
CREATE TABLE click_day_values (
    shortener_url_id BLOB NOT NULL, day INTEGER NOT NULL,
    dimension INTEGER NOT NULL, value TEXT NOT NULL, clicks INTEGER NOT NULL,
    PRIMARY KEY (shortener_url_id, dimension, day, value)
) WITHOUT ROWID;
CREATE INDEX clicks_by_visitor ON clicks (shortener_url_id, visitor_key, clicked_at);
INSERT INTO click_hours
    SELECT shortener_url_id, clicked_at - (((clicked_at % 3600) + 3600) % 3600) AS hour,
        COUNT(*), SUM(is_bot), COUNT(DISTINCT NULLIF(visitor_key, '')),
        MIN(clicked_at)
    FROM clicks GROUP BY shortener_url_id, hour;
INSERT INTO click_days
    SELECT shortener_url_id, clicked_at - (((clicked_at % 86400) + 86400) % 86400) AS day,
        COUNT(*), SUM(is_bot), COUNT(DISTINCT NULLIF(visitor_key, ''))
    FROM clicks GROUP BY shortener_url_id, day;
INSERT INTO click_day_values
    SELECT shortener_url_id, day, dimension, value, COUNT(*) FROM (
        SELECT shortener_url_id, clicked_at - (((clicked_at % 86400) + 86400) % 86400) AS day,
            0 AS dimension, referrer_host AS value FROM clicks
        UNION ALL SELECT shortener_url_id, clicked_at - (((clicked_at % 86400) + 86400) % 86400),
            1, browser FROM clicks
        UNION ALL SELECT shortener_url_id, clicked_at - (((clicked_at % 86400) + 86400) % 86400),
            2, os FROM clicks
        UNION ALL SELECT shortener_url_id, clicked_at - (((clicked_at % 86400) + 86400) % 86400),
            3, device FROM clicks
        UNION ALL SELECT shortener_url_id, clicked_at - (((clicked_at % 86400) + 86400) % 86400),
            4, country FROM clicks)
    WHERE value != '' GROUP BY shortener_url_id, day, dimension, value;
