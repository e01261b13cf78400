-- Everything CREATE EXTENSION pg_ecom builds, in a comparable form: a fresh
-- install and an updated one must print the same.
SELECT 'function' AS kind, p.oid::regprocedure::text AS name,
       format('cost=%s rows=%s vol=%s par=%s strict=%s secdef=%s config=%s acl=%s args=(%s) result=%s comment=%s body=%s',
              p.procost, p.prorows, p.provolatile, p.proparallel, p.proisstrict, p.prosecdef,
              p.proconfig, p.proacl, pg_get_function_arguments(p.oid), pg_get_function_result(p.oid),
              obj_description(p.oid, 'pg_proc'), md5(p.prosrc)) AS details
  FROM pg_depend d JOIN pg_proc p ON d.classid = 'pg_proc'::regclass AND d.objid = p.oid
 WHERE d.refclassid = 'pg_extension'::regclass AND d.deptype = 'e'
   AND d.refobjid = (SELECT oid FROM pg_extension WHERE extname = 'pg_ecom')
UNION ALL
SELECT 'column', c.relname || '.' || a.attname,
       format('#%s %s notnull=%s default=%s identity=%s', a.attnum, format_type(a.atttypid, a.atttypmod), a.attnotnull,
              pg_get_expr(ad.adbin, ad.adrelid), a.attidentity)
  FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace AND n.nspname = 'ecom'
  JOIN pg_attribute a ON a.attrelid = c.oid AND a.attnum > 0 AND NOT a.attisdropped
  LEFT JOIN pg_attrdef ad ON ad.adrelid = c.oid AND ad.adnum = a.attnum
UNION ALL
SELECT 'relation', n.nspname || '.' || c.relname,
       format('%s options=%s acl=%s rls=%s comment=%s', c.relkind, c.reloptions, c.relacl, c.relrowsecurity,
              obj_description(c.oid, 'pg_class'))
  FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace AND n.nspname = 'ecom'
UNION ALL
SELECT 'index', c.relname, pg_get_indexdef(i.indexrelid)
  FROM pg_index i JOIN pg_class c ON c.oid = i.indexrelid JOIN pg_namespace n ON n.oid = c.relnamespace AND n.nspname = 'ecom'
UNION ALL
SELECT 'constraint', conrelid::regclass::text || '.' || conname, pg_get_constraintdef(oid)
  FROM pg_constraint WHERE connamespace = 'ecom'::regnamespace
UNION ALL
SELECT 'view', c.oid::regclass::text, pg_get_viewdef(c.oid)
  FROM pg_class c WHERE c.relnamespace = 'ecom'::regnamespace AND c.relkind = 'v'
UNION ALL
SELECT 'sequence', seqrelid::regclass::text,
       format('type=%s start=%s inc=%s max=%s min=%s cache=%s cycle=%s', seqtypid::regtype, seqstart, seqincrement,
              seqmax, seqmin, seqcache, seqcycle)
  FROM pg_sequence WHERE seqrelid::regclass::text LIKE 'ecom.%'
UNION ALL
SELECT 'schema', nspname, format('acl=%s comment=%s', nspacl, obj_description(oid, 'pg_namespace'))
  FROM pg_namespace WHERE nspname = 'ecom'
UNION ALL
SELECT 'event trigger', t.evtname, format('%s tags=%s function=%s enabled=%s', t.evtevent, t.evttags, t.evtfoid::regprocedure, t.evtenabled)
  FROM pg_event_trigger t JOIN pg_depend d ON d.classid = 'pg_event_trigger'::regclass AND d.objid = t.oid
 WHERE d.refclassid = 'pg_extension'::regclass AND d.deptype = 'e'
   AND d.refobjid = (SELECT oid FROM pg_extension WHERE extname = 'pg_ecom')
UNION ALL
SELECT 'dumped', e.extconfig::regclass[]::text, coalesce(e.extcondition::text, '')
  FROM pg_extension e WHERE e.extname = 'pg_ecom'
UNION ALL
SELECT 'member', pg_describe_object(d.classid, d.objid, d.objsubid), ''
  FROM pg_depend d
 WHERE d.refclassid = 'pg_extension'::regclass AND d.deptype = 'e'
   AND d.refobjid = (SELECT oid FROM pg_extension WHERE extname = 'pg_ecom')
ORDER BY 1, 2, 3;
