// The database side of cross-process cache invalidation: triggers that send
// one NOTIFY on channel softserve_catalog for every committed change to what
// the classify path and auth cache (tenants, keys, quotas, tasks, prompts,
// prompt versions, ensembles). A prompt's changes name the prompt, so the
// other prompts' cached resolutions of its task stay. The payload is a CatalogEvent as JSON
// (prompts/catalog-cache.ts), under 300 bytes (names are at most 64
// characters); notify.ts listens and hands it to the caches.
//
// Why triggers, not pg_notify calls in the store's code: every writer is
// covered, whatever code path or process made the write (serve replicas,
// trainer processes publishing a job, `softserve admin`, a future store
// method, cascades of a tenant or task deletion), and NOTIFY inside the
// writing transaction is delivered only if and when it commits (PostgreSQL
// also folds identical payloads of one transaction into one). The cost is a
// lookup of the task row for child tables; a child row deleted by a cascade
// finds its task gone and sends nothing: the parent's own trigger has said it.
//
// Shipped as a migration in db.ts (MIGRATIONS): never edit this text once released; a
// change is a new migration.

/** The LISTEN/NOTIFY channel. */
export const CATALOG_CHANNEL = 'softserve_catalog';

export const CATALOG_NOTIFY_SQL = `
  CREATE FUNCTION softserve_catalog_send(payload json) RETURNS void LANGUAGE plpgsql AS $$
  BEGIN
    PERFORM pg_notify('${CATALOG_CHANNEL}', payload::text);
  END $$;

  CREATE FUNCTION softserve_catalog_task(task BIGINT) RETURNS void LANGUAGE plpgsql AS $$
  DECLARE t RECORD;
  BEGIN
    SELECT tenant_id, name INTO t FROM tasks WHERE id = task;
    IF FOUND THEN
      PERFORM softserve_catalog_send(json_build_object('entity', 'task', 'tenantId', t.tenant_id, 'task', t.name));
    END IF;
  END $$;

  CREATE FUNCTION softserve_catalog_tenants() RETURNS trigger LANGUAGE plpgsql AS $$
  BEGIN
    PERFORM softserve_catalog_send(json_build_object('entity', 'tenant', 'tenantId', OLD.id));
    RETURN NULL;
  END $$;
  CREATE TRIGGER catalog_notify AFTER UPDATE OR DELETE ON tenants
    FOR EACH ROW EXECUTE FUNCTION softserve_catalog_tenants();

  -- A new key needs no event: unknown keys are never cached.
  CREATE FUNCTION softserve_catalog_api_keys() RETURNS trigger LANGUAGE plpgsql AS $$
  BEGIN
    PERFORM softserve_catalog_send(json_build_object('entity', 'key', 'tenantId', OLD.tenant_id));
    RETURN NULL;
  END $$;
  CREATE TRIGGER catalog_notify AFTER UPDATE OR DELETE ON api_keys
    FOR EACH ROW EXECUTE FUNCTION softserve_catalog_api_keys();

  CREATE FUNCTION softserve_catalog_quotas() RETURNS trigger LANGUAGE plpgsql AS $$
  BEGIN
    IF TG_OP = 'DELETE' THEN
      PERFORM softserve_catalog_send(json_build_object('entity', 'quota', 'tenantId', OLD.tenant_id));
    ELSE
      PERFORM softserve_catalog_send(json_build_object('entity', 'quota', 'tenantId', NEW.tenant_id));
    END IF;
    RETURN NULL;
  END $$;
  CREATE TRIGGER catalog_notify AFTER INSERT OR UPDATE OR DELETE ON tenant_quotas
    FOR EACH ROW EXECUTE FUNCTION softserve_catalog_quotas();

  CREATE FUNCTION softserve_catalog_tasks() RETURNS trigger LANGUAGE plpgsql AS $$
  BEGIN
    IF TG_OP <> 'INSERT' THEN
      PERFORM softserve_catalog_send(json_build_object('entity', 'task', 'tenantId', OLD.tenant_id, 'task', OLD.name));
    END IF;
    IF TG_OP <> 'DELETE' THEN
      PERFORM softserve_catalog_send(json_build_object('entity', 'task', 'tenantId', NEW.tenant_id, 'task', NEW.name));
    END IF;
    RETURN NULL;
  END $$;
  CREATE TRIGGER catalog_notify AFTER INSERT OR UPDATE OR DELETE ON tasks
    FOR EACH ROW EXECUTE FUNCTION softserve_catalog_tasks();

  -- A prompt's versions: only that prompt's selectors (and the task's ensembles) need forgetting.
  CREATE FUNCTION softserve_catalog_prompt(task BIGINT, prompt TEXT) RETURNS void LANGUAGE plpgsql AS $$
  DECLARE t RECORD;
  BEGIN
    SELECT tenant_id, name INTO t FROM tasks WHERE id = task;
    IF FOUND THEN
      PERFORM softserve_catalog_send(json_build_object('entity', 'prompt', 'tenantId', t.tenant_id, 'task', t.name, 'prompt', prompt));
    END IF;
  END $$;

  CREATE FUNCTION softserve_catalog_prompts() RETURNS trigger LANGUAGE plpgsql AS $$
  BEGIN
    IF TG_OP = 'DELETE' THEN
      PERFORM softserve_catalog_prompt(OLD.task_id, OLD.name);
    ELSE
      PERFORM softserve_catalog_prompt(NEW.task_id, NEW.name);
    END IF;
    RETURN NULL;
  END $$;
  CREATE TRIGGER catalog_notify AFTER INSERT OR DELETE ON prompts
    FOR EACH ROW EXECUTE FUNCTION softserve_catalog_prompts();

  -- Ensembles name their task by id.
  CREATE FUNCTION softserve_catalog_ensembles() RETURNS trigger LANGUAGE plpgsql AS $$
  BEGIN
    IF TG_OP = 'DELETE' THEN
      PERFORM softserve_catalog_task(OLD.task_id);
    ELSE
      PERFORM softserve_catalog_task(NEW.task_id);
    END IF;
    RETURN NULL;
  END $$;
  CREATE TRIGGER catalog_notify AFTER INSERT OR UPDATE OR DELETE ON ensembles
    FOR EACH ROW EXECUTE FUNCTION softserve_catalog_ensembles();

  -- Prompt versions name their prompt, which names the task.
  CREATE FUNCTION softserve_catalog_prompt_versions() RETURNS trigger LANGUAGE plpgsql AS $$
  DECLARE p RECORD;
  BEGIN
    IF TG_OP = 'DELETE' THEN
      SELECT task_id, name INTO p FROM prompts WHERE id = OLD.prompt_id;
    ELSE
      SELECT task_id, name INTO p FROM prompts WHERE id = NEW.prompt_id;
    END IF;
    IF FOUND THEN
      PERFORM softserve_catalog_prompt(p.task_id, p.name);
    END IF;
    RETURN NULL;
  END $$;
  CREATE TRIGGER catalog_notify AFTER INSERT OR UPDATE OR DELETE ON prompt_versions
    FOR EACH ROW EXECUTE FUNCTION softserve_catalog_prompt_versions();

  -- Members change only with their ensemble's row, except by hand: cover that too.
  CREATE FUNCTION softserve_catalog_ensemble_members() RETURNS trigger LANGUAGE plpgsql AS $$
  DECLARE task BIGINT;
  BEGIN
    IF TG_OP = 'DELETE' THEN
      SELECT task_id INTO task FROM ensembles WHERE id = OLD.ensemble_id;
    ELSE
      SELECT task_id INTO task FROM ensembles WHERE id = NEW.ensemble_id;
    END IF;
    IF FOUND THEN
      PERFORM softserve_catalog_task(task);
    END IF;
    RETURN NULL;
  END $$;
  CREATE TRIGGER catalog_notify AFTER INSERT OR UPDATE OR DELETE ON ensemble_members
    FOR EACH ROW EXECUTE FUNCTION softserve_catalog_ensemble_members();
`;
