SELECT CASE
  WHEN (SELECT count(*) FROM item) <> (SELECT items FROM counter WHERE id = 0)
    OR (SELECT count(*) FROM item) <> (SELECT coalesce(sum(rows), 0) FROM t)
  THEN 'half a transaction: ' || (SELECT count(*) FROM item) || ' items, counter says '
       || (SELECT items FROM counter WHERE id = 0) || ', t says ' || (SELECT coalesce(sum(rows), 0) FROM t)
  WHEN (SELECT sum(balance) FROM account) <> 100 * (SELECT count(*) FROM account)
  THEN 'half a transfer: the accounts hold ' || (SELECT sum(balance) FROM account) || ', not '
       || 100 * (SELECT count(*) FROM account)
  ELSE 'ok'
END
