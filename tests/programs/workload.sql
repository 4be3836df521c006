-- sqlite3 workload for the real-program suite; deterministic output.
PRAGMA journal_mode = WAL;
PRAGMA cache_size = -16000;
CREATE TABLE customers (id INTEGER PRIMARY KEY, name TEXT NOT NULL, region INTEGER, joined INTEGER);
CREATE TABLE orders (id INTEGER PRIMARY KEY, customer INTEGER NOT NULL, amount INTEGER, item TEXT, note TEXT);
CREATE TABLE items (name TEXT PRIMARY KEY, price INTEGER) WITHOUT ROWID;

BEGIN;
WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 20000)
INSERT INTO customers SELECT i, 'cust' || ((i * 7919) % 20011) || '-' || substr('abcdefghijklmnopqrstuvwxyz', 1 + i % 26, 1 + i % 9),
       (i * 31) % 17, 1600000000 + (i * 86413) % 31536000 FROM n;
WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 500)
INSERT INTO items SELECT 'item' || i || printf('%.*c', i % 20, 'x'), 100 + (i * 37) % 9900 FROM n;
WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 100000)
INSERT INTO orders SELECT i, 1 + (i * 104729) % 20000, 1 + (i * 65537) % 1000,
       'item' || (1 + (i * 2654435761) % 500) || printf('%.*c', (1 + (i * 2654435761) % 500) % 20, 'x'),
       printf('%.*c', (i * 13) % 200, 'n') FROM n;
COMMIT;

CREATE INDEX orders_customer ON orders(customer);
CREATE INDEX orders_item_amount ON orders(item, amount);
CREATE INDEX customers_region ON customers(region, name);

SELECT 'rows', (SELECT count(*) FROM customers), (SELECT count(*) FROM orders), (SELECT count(*) FROM items);

-- join + group by + order by
SELECT c.region, count(*), sum(o.amount * i.price), max(o.amount), min(c.name)
  FROM orders o JOIN customers c ON c.id = o.customer JOIN items i ON i.name = o.item
 GROUP BY c.region ORDER BY c.region;

SELECT c.name, count(o.id) AS n, sum(o.amount) AS total
  FROM customers c LEFT JOIN orders o ON o.customer = c.id
 GROUP BY c.id ORDER BY total DESC, c.name LIMIT 10;

SELECT item, count(*), avg(amount) FROM orders GROUP BY item HAVING count(*) > 210 ORDER BY 2 DESC, 1 LIMIT 10;

-- sorting big text, window functions, subqueries
SELECT sum(length(note)), count(DISTINCT note) FROM orders;
SELECT id, customer, amount, rank() OVER (PARTITION BY customer ORDER BY amount DESC, id) AS r
  FROM orders WHERE customer IN (1, 2, 3) ORDER BY customer, r LIMIT 15;
SELECT substr(group_concat(name, ','), 1, 120), length(group_concat(name, ','))
  FROM (SELECT name FROM customers ORDER BY name DESC);
SELECT count(*) FROM orders WHERE customer IN (SELECT id FROM customers WHERE region = 3) AND amount > 500;

-- updates, deletes, a temp table, vacuum, integrity
UPDATE orders SET note = note || note WHERE id % 10 = 0;
DELETE FROM orders WHERE amount < 50;
CREATE TEMP TABLE agg AS SELECT customer, sum(amount) s FROM orders GROUP BY customer;
SELECT count(*), sum(s), max(s) FROM agg;
VACUUM;
PRAGMA integrity_check;
SELECT 'after', count(*), sum(length(note)) FROM orders;
