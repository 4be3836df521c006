-- sqlite_workload.sql: the sqlite3 CLI as a real allocation-heavy program.
--
--   sqlite3 -bail :memory: ".parameter set @n N" ".read sqlite_workload.sql"
--
-- An in-memory database (every page lives in malloc'd memory) with two
-- tables filled from recursive CTEs (N orders, N/10 customers), three
-- indexes built afterwards, joins, GROUP BY with ORDER BY, a window-function
-- sort on a computed text key, updates, deletes, a VACUUM, and finally
-- self-checks: each check inserts a row whose `ok` must be 1, or a trigger
-- aborts and the CLI (with -bail) exits with status 1. The last statement
-- prints one line with a checksum over the data, identical under every
-- allocator.
-- Changing temp_store drops the temp schema, where the CLI keeps @n: save
-- it in a table and put it back.
CREATE TABLE params AS SELECT @n AS n;
PRAGMA temp_store = MEMORY;
.parameter init
INSERT INTO temp.sqlite_parameters SELECT '@n', n FROM params;
PRAGMA cache_size = -262144;

CREATE TABLE checks(name TEXT, ok INTEGER);
CREATE TRIGGER checks_ok BEFORE INSERT ON checks WHEN NEW.ok IS NOT 1
BEGIN SELECT RAISE(ABORT, 'sqlite workload: self-check failed'); END;

CREATE TABLE customers(id INTEGER PRIMARY KEY, name TEXT, region INTEGER, balance REAL);
CREATE TABLE orders(id INTEGER PRIMARY KEY, customer INTEGER, item TEXT, qty INTEGER, price INTEGER, note TEXT);

WITH RECURSIVE c(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM c WHERE i < @n / 10)
INSERT INTO customers
SELECT i, printf('cust-%06d-%s', i, hex((i * 2654435761) % 4294967296)), i % 17,
       ((i * 7919) % 100000) / 100.0
FROM c;

WITH RECURSIVE c(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM c WHERE i < @n)
INSERT INTO orders
SELECT i, ((i * 7) % (@n / 10)) + 1, 'item-' || ((i * 31) % 1000), i % 9 + 1, ((i * 13) % 500) + 1,
       substr('lorem ipsum dolor sit amet consectetur adipiscing elit', 1 + i % 20, 5 + i % 30)
FROM c;

CREATE INDEX orders_customer ON orders(customer);
CREATE INDEX orders_item ON orders(item, qty);
CREATE INDEX customers_region ON customers(region, name);

CREATE TABLE results(k TEXT PRIMARY KEY, v);
INSERT INTO results SELECT 'join_revenue', sum(o.qty * o.price)
  FROM orders o JOIN customers c ON c.id = o.customer WHERE c.region < 8;
INSERT INTO results SELECT 'top_items', group_concat(item, ',') FROM
  (SELECT item, sum(qty * price) AS s FROM orders GROUP BY item ORDER BY s DESC, item LIMIT 5);
INSERT INTO results SELECT 'region_balance', group_concat(printf('%d:%.2f', region, b), ';') FROM
  (SELECT region, sum(balance) AS b FROM customers GROUP BY region ORDER BY region);
INSERT INTO results SELECT 'sorted_names', sum(rn * unicode(substr(name, 13))) FROM
  (SELECT name, row_number() OVER (ORDER BY substr(name, 13), id) AS rn FROM customers);
INSERT INTO results SELECT 'note_groups', count(*) FROM
  (SELECT note, count(*) FROM orders GROUP BY note HAVING count(*) > 1);

UPDATE orders SET qty = qty + 1, note = note || '!' WHERE id % 5 = 0;
DELETE FROM orders WHERE id % 11 = 0;
VACUUM;

INSERT INTO checks SELECT 'orders left', (SELECT count(*) FROM orders) = @n - @n / 11;
INSERT INTO checks SELECT 'customers', (SELECT count(*) FROM customers) = @n / 10;
INSERT INTO checks SELECT 'join keeps every order',
  (SELECT count(*) FROM orders o JOIN customers c ON c.id = o.customer) = (SELECT count(*) FROM orders);
INSERT INTO checks SELECT 'index and scan agree',
  (SELECT sum(qty * price) FROM orders WHERE customer BETWEEN 100 AND 5000) =
  (SELECT sum(qty * price) FROM orders NOT INDEXED WHERE customer + 0 BETWEEN 100 AND 5000);
INSERT INTO checks SELECT 'group sums add up',
  (SELECT sum(s) FROM (SELECT sum(qty) AS s FROM orders GROUP BY customer)) = (SELECT sum(qty) FROM orders);
INSERT INTO checks SELECT 'qty closed form',
  (SELECT sum(qty) FROM orders) =
  (WITH RECURSIVE c(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM c WHERE i < @n)
   SELECT sum(i % 9 + 1 + (i % 5 = 0)) FROM c WHERE i % 11 != 0);
INSERT INTO checks SELECT 'results', (SELECT count(*) FROM results) = 5;
INSERT INTO checks SELECT 'integrity', (SELECT group_concat(integrity_check) FROM pragma_integrity_check) = 'ok';

SELECT printf('sqlite n=%d checks=%d checksum=%016x', @n, (SELECT count(*) FROM checks),
  ((SELECT sum(id * qty + price * length(note)) FROM orders) * 1000003 +
   (SELECT sum(length(v) * 31 + unicode(v)) FROM results) +
   (SELECT sum(v) FROM results WHERE typeof(v) = 'integer')) % 9223372036854775807);
