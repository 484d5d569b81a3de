SELECT CASE
  WHEN (SELECT count(*) FROM item) = (SELECT items FROM counter WHERE id = 0)
   AND (SELECT count(*) FROM item) = (SELECT coalesce(sum(rows), 0) FROM t)
  THEN 'ok'
  ELSE 'half a transaction: ' || (SELECT count(*) FROM item) || ' items, counter says '
       || (SELECT items FROM counter WHERE id = 0) || ', t says ' || (SELECT coalesce(sum(rows), 0) FROM t)
END
