import { readFileSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import t from 'tap'
import { parseAllDocuments, parse as parseYaml } from 'yaml'
import { IMAGE, builtImage, isPodman, output, run, uniqueName } from '../helpers/container.js'
import { ROOT } from '../helpers/build.js'
import { requirePart } from '../helpers/require.js'
import { pollUntil } from '../helpers/wait.js'

// The Helm chart: helm lint --strict, helm template for several value sets checked against the Kubernetes schemas
// (kubernetes-models, offline) and for what each set must produce, the refusals, and the rendered Deployment run by
// `podman kube play` against the image built from this checkout.

const CHART = join(ROOT, 'deploy', 'helm', 'mrmat-ts-api-fastify')
const POSTGRES = 'postgres://api:secret@db.example:5432/mrmat'

interface Manifest {
  apiVersion: string
  kind: string
  metadata: { name: string }
  spec?: Record<string, unknown>
  data?: Record<string, string>
  stringData?: Record<string, string>
}

interface Container {
  args: string[]
  image: string
  env?: { name: string, value?: string, valueFrom?: { secretKeyRef: { name: string, key: string } } }[]
  startupProbe: { httpGet: { path: string } }
  livenessProbe: { httpGet: { path: string } }
  readinessProbe: { httpGet: { path: string } }
  securityContext: { readOnlyRootFilesystem: boolean, allowPrivilegeEscalation: boolean }
  resources: Record<string, unknown>
}

interface DeploymentSpec {
  replicas?: number
  strategy: { rollingUpdate: { maxUnavailable: number } }
  template: { spec: {
    automountServiceAccountToken: boolean
    terminationGracePeriodSeconds: number
    securityContext: { runAsNonRoot: boolean, runAsUser: number }
    containers: Container[]
  } }
}

const helm = process.env.HELM ?? 'helm'
const hasHelm = (await run(helm, ['version', '--short'])).code === 0

/** The module of kubernetes-models that holds an apiVersion's kinds: `v1`, `apps/v1`, `networking.k8s.io/v1`. */
async function modelOf(manifest: Manifest): Promise<{ validate(): void }> {
  const module = await import(`kubernetes-models/${manifest.apiVersion}`) as Record<string,
    new (data: unknown) => { validate(): void }>
  const Model = module[manifest.kind]
  if (Model === undefined) throw new Error(`kubernetes-models has no ${manifest.apiVersion} ${manifest.kind}`)
  return new Model(manifest)
}

async function template(sets: string[]): Promise<{ code: number, stderr: string, manifests: Manifest[] }> {
  const result = await run(helm, ['template', 'mrmat', CHART, ...sets.flatMap((set) => ['--set', set])])
  const manifests = result.code === 0
    ? parseAllDocuments(result.stdout).map((doc) => doc.toJSON() as Manifest | null)
      .filter((doc): doc is Manifest => doc !== null)
    : []
  return { code: result.code, stderr: result.stderr, manifests }
}

const find = (manifests: Manifest[], kind: string): Manifest | undefined => manifests.find((m) => m.kind === kind)
const deploymentOf = (manifests: Manifest[]): DeploymentSpec =>
  find(manifests, 'Deployment')?.spec as unknown as DeploymentSpec
const kinds = (manifests: Manifest[]): string[] => manifests.map((m) => m.kind).sort()

if (requirePart(t, hasHelm, `helm (${helm}; HELM names it)`)) {
  t.test('helm lint --strict passes', async (t) => {
    const lint = await run(helm, ['lint', '--strict', CHART])
    t.equal(lint.code, 0, lint.stdout + lint.stderr)
  })

  const sets: Record<string, string[]> = {
    'defaults': [],
    'ingress on': ['ingress.enabled=true', 'replicaCount=3', `database.uri=${POSTGRES}`],
    'autoscaling on': ['autoscaling.enabled=true', `database.uri=${POSTGRES}`, 'oidcClientSecrets={}'],
    'existing secret': ['existingSecret=mrmat-managed', 'existingSecretHasClientSecrets=true', 'replicaCount=2'],
  }
  const rendered: Record<string, Manifest[]> = {}
  for (const [name, values] of Object.entries(sets)) {
    t.test(`helm template (${name}): every manifest is valid against the Kubernetes schemas`, async (t) => {
      const { code, stderr, manifests } = await template(values)
      t.equal(code, 0, stderr)
      rendered[name] = manifests
      for (const manifest of manifests) {
        const model = await modelOf(manifest)
        t.doesNotThrow(() => { model.validate() }, `${manifest.kind} ${manifest.metadata.name}`)
      }
    })
  }

  t.test('the Deployment: rolling without losing capacity, probes, non-root, read-only, drains', async (t) => {
    const deployment = deploymentOf(rendered.defaults ?? [])
    const pod = deployment.template.spec
    const [container] = pod.containers
    t.equal(deployment.replicas, 1, 'one replica by default (SQLite)')
    t.equal(deployment.strategy.rollingUpdate.maxUnavailable, 0)
    t.equal(container?.startupProbe.httpGet.path, '/healthz/liveness')
    t.equal(container?.livenessProbe.httpGet.path, '/healthz/liveness')
    t.equal(container?.readinessProbe.httpGet.path, '/healthz/readiness')
    t.same([pod.securityContext.runAsNonRoot, pod.securityContext.runAsUser], [true, 1000])
    t.same([container?.securityContext.readOnlyRootFilesystem, container?.securityContext.allowPrivilegeEscalation],
      [true, false])
    t.equal(pod.automountServiceAccountToken, false, 'no service-account token')
    const args = container?.args ?? []
    const delay = Number(args[args.indexOf('--shutdown-delay') + 1])
    const timeout = Number(args[args.indexOf('--shutdown-timeout') + 1])
    t.ok(delay > 0, `--shutdown-delay ${String(delay)} ms: endpoints drain before the listener closes`)
    t.ok(pod.terminationGracePeriodSeconds * 1000 > delay + timeout,
      `grace period ${String(pod.terminationGracePeriodSeconds)} s above delay + timeout`)
    t.ok(container?.resources.requests !== undefined, 'resources requested')
    const appVersion = (parseYaml(readFileSync(join(CHART, 'Chart.yaml'), 'utf8')) as { appVersion: string }).appVersion
    t.match(container?.image, new RegExp(`:${appVersion.replace(/\./g, '\\.')}$`), 'the image tag is appVersion')
    t.same(kinds(rendered.defaults ?? []), ['ConfigMap', 'Deployment', 'NetworkPolicy', 'Service'],
      'no Secret, autoscaler or disruption budget for one replica without secrets')
  })

  t.test('ingress on: nginx class, the server trusts the forwarded headers, only the controller may connect',
    async (t) => {
      const manifests = rendered['ingress on'] ?? []
      const ingress = find(manifests, 'Ingress')?.spec as { ingressClassName: string }
      t.equal(ingress.ingressClassName, 'nginx')
      const container = deploymentOf(manifests).template.spec.containers[0]
      const args = container?.args ?? []
      t.equal(args[args.indexOf('--trust-proxy') + 1], 'uniquelocal')
      t.same(container?.env?.find((e) => e.name === 'MRMAT_DB')?.valueFrom?.secretKeyRef,
        { name: 'mrmat-mrmat-ts-api-fastify', key: 'database-uri' }, 'the database URI from the Secret')
      t.equal(find(manifests, 'Secret')?.stringData?.['database-uri'], POSTGRES)
      t.match(find(manifests, 'NetworkPolicy')?.spec, { ingress: [{ from: [{ namespaceSelector: {} }] }] })
      t.ok(find(manifests, 'PodDisruptionBudget') !== undefined, 'a disruption budget for several replicas')
      const plain = deploymentOf(rendered.defaults ?? []).template.spec.containers[0]
      t.notOk(plain?.args.includes('--trust-proxy'), 'without ingress nothing is trusted')
    })

  t.test('autoscaling on: an HPA owns the replica count; existing secret: no Secret is written', async (t) => {
    const scaled = rendered['autoscaling on'] ?? []
    t.match(find(scaled, 'HorizontalPodAutoscaler')?.spec, { minReplicas: 2, maxReplicas: 6 })
    t.equal(deploymentOf(scaled).replicas, undefined)
    const existing = rendered['existing secret'] ?? []
    t.equal(find(existing, 'Secret'), undefined)
    const container = deploymentOf(existing).template.spec.containers[0]
    t.same(container?.env?.map((e) => e.valueFrom?.secretKeyRef.name ?? e.value),
      ['mrmat-managed', '/etc/mrmat/secrets/client_secrets.json'])
  })

  t.test('the chart refuses SQLite with several replicas, and a database URI that is not PostgreSQL', async (t) => {
    for (const values of [['replicaCount=2'], ['autoscaling.enabled=true'], ['database.uri=sqlite:/data/x.db']]) {
      const { code, stderr } = await template(values)
      t.equal(code, 1, values.join(' '))
      t.match(stderr, /need PostgreSQL|must be a postgres:\/\/ URI/, values.join(' '))
    }
  })

  t.test('podman kube play of the rendered chart: the pod becomes ready, its probes\' paths answer 200', async (t) => {
    const image = await builtImage(t)
    if (image === undefined) return
    if (!requirePart(t, isPodman(image.engine), 'podman (kube play)')) return
    const [repository, tag] = IMAGE.split(':') as [string, string]
    const { manifests } = await template([`image.repository=${repository}`, `image.tag=${tag}`])
    const played = manifests.filter((m) => m.kind === 'Deployment' || m.kind === 'ConfigMap')
    const name = uniqueName('kube')
    for (const manifest of played) manifest.metadata.name = name
    const deployment = played.find((m) => m.kind === 'Deployment') as Manifest & { spec: DeploymentSpec }
    const podSpec = deployment.spec.template.spec as unknown as {
      volumes: { configMap?: { name: string } }[]
      containers: (Container & { ports?: unknown[], [probe: string]: unknown })[]
    }
    for (const volume of podSpec.volumes) if (volume.configMap !== undefined) volume.configMap.name = name
    // podman kube play publishes every containerPort on the host's port of the same number (8080 here, which
    // anything may hold): the port stays unpublished, and the probes name it by number instead of by name.
    for (const container of podSpec.containers) {
      delete container.ports
      for (const probe of [container.startupProbe, container.livenessProbe, container.readinessProbe]) {
        (probe.httpGet as unknown as { port: number | string }).port = 8080
      }
    }
    const file = join(t.testdir(), 'rendered.yaml')
    writeFileSync(file, played.map((m) => JSON.stringify(m)).join('\n---\n'))
    t.teardown(async () => {
      await run(image.engine, ['pod', 'rm', '-f', '-t', '0', `${name}-pod-0`])
      await run(image.engine, ['volume', 'rm', '-f', name])
    })
    const play = await run(image.engine, ['kube', 'play', file], 180_000)
    t.equal(play.code, 0, `kube play: ${play.stdout}${play.stderr}`)
    // A Deployment's pods are <name>-pod-<n>, their containers <pod>-<container>.
    const container = `${name}-pod-0-api`
    const fetchPath = (path: string) => ['exec', container, 'node', '-e',
      `fetch("http://127.0.0.1:8080${path}").then((r) => { console.log(r.status); process.exit(r.ok ? 0 : 1) },`
      + ' () => process.exit(2))']
    for (const path of ['/healthz/liveness', '/healthz/readiness']) {
      const answered = await pollUntil(async () => {
        const result = await run(image.engine, fetchPath(path))
        return result.code === 0 ? result.stdout : undefined
      }, 60_000, `${path} in the pod`, 500)
      t.equal(answered, '200\n', `${path} answers 200`)
    }
    const user = await output(image.engine, ['exec', container, 'node', '-e', 'console.log(process.getuid())'])
    t.equal(user, '1000\n', 'runs as uid 1000')
  })
}
