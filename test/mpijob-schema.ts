// The Kubeflow MPI Operator's MPIJob (kubeflow.org/v2beta1) schema, written from the openAPIV3Schema
// of its CRD (manifests/base/kubeflow.org_mpijobs.yaml: field names, types, int32/int64 formats,
// enums, required fields) plus the operator's admission rules after its defaulting
// (pkg/apis/kubeflow/validation, v2beta1/default.go: a Launcher of exactly 1 replica, Worker
// replicas >= 1, restartPolicy Never|OnFailure, cleanPodPolicy None|Running|All, non-negative
// counts, at least one container). The pod template is
// checked to the depth this repository's manifest uses (containers, volumes, resources, env); other
// PodSpec fields are accepted by name only. Unknown fields are errors: the API server would prune
// them silently, which hides typos. No package offers this schema offline.

type Schema =
  | { t: 'string'; enum?: readonly string[]; pattern?: RegExp }
  | { t: 'int'; bits: 32 | 64; min?: number }
  | { t: 'bool' }
  | { t: 'any' }
  | { t: 'quantity' }
  | { t: 'array'; items: Schema; minItems?: number }
  | { t: 'map'; values: Schema; keys?: readonly string[] }
  | { t: 'object'; props: Record<string, Schema>; required?: readonly string[] };

const str = (o: { enum?: readonly string[]; pattern?: RegExp } = {}): Schema => ({ t: 'string', ...o });
const int32 = (min?: number): Schema => ({ t: 'int', bits: 32, min });
const int64 = (min?: number): Schema => ({ t: 'int', bits: 64, min });
const bool: Schema = { t: 'bool' };
const any: Schema = { t: 'any' };
const obj = (props: Record<string, Schema>, required?: readonly string[]): Schema => ({ t: 'object', props, required });
const arr = (items: Schema, minItems?: number): Schema => ({ t: 'array', items, minItems });
const map = (values: Schema, keys?: readonly string[]): Schema => ({ t: 'map', values, keys });
const QUANTITY = /^(\+|-)?(([0-9]+(\.[0-9]*)?)|(\.[0-9]+))(([KMGTPE]i)|[numkMGTPE]|([eE](\+|-)?(([0-9]+(\.[0-9]*)?)|(\.[0-9]+))))?$/;

const objectMeta = obj({ name: str(), namespace: str(), labels: map(str()), annotations: map(str()), finalizers: arr(str()) });

const container = obj(
  {
    name: str(), image: str(), command: arr(str()), args: arr(str()), workingDir: str(),
    imagePullPolicy: str({ enum: ['Always', 'Never', 'IfNotPresent'] }),
    env: arr(obj({ name: str(), value: str(), valueFrom: any }, ['name'])),
    envFrom: arr(any),
    ports: arr(obj({ containerPort: int32(), hostIP: str(), hostPort: int32(), name: str(), protocol: str() }, ['containerPort'])),
    resources: obj({ limits: map({ t: 'quantity' }), requests: map({ t: 'quantity' }), claims: arr(any) }),
    volumeMounts: arr(obj({ name: str(), mountPath: str(), mountPropagation: str(), readOnly: bool, recursiveReadOnly: str(), subPath: str(), subPathExpr: str() }, ['mountPath', 'name'])),
    securityContext: any, lifecycle: any, livenessProbe: any, readinessProbe: any, startupProbe: any,
    resizePolicy: any, restartPolicy: str(), restartPolicyRules: any, stdin: bool, stdinOnce: bool, tty: bool,
    terminationMessagePath: str(), terminationMessagePolicy: str(), volumeDevices: any,
  },
  ['name'],
);

const VOLUME_SOURCES = [
  'awsElasticBlockStore', 'azureDisk', 'azureFile', 'cephfs', 'cinder', 'configMap', 'csi', 'downwardAPI', 'emptyDir', 'ephemeral', 'fc',
  'flexVolume', 'flocker', 'gcePersistentDisk', 'gitRepo', 'glusterfs', 'hostPath', 'image', 'iscsi', 'nfs', 'persistentVolumeClaim',
  'photonPersistentDisk', 'portworxVolume', 'projected', 'quobyte', 'rbd', 'scaleIO', 'secret', 'storageos', 'vsphereVolume',
];
const volume = obj(
  { name: str(), ...Object.fromEntries(VOLUME_SOURCES.map((k) => [k, any])), persistentVolumeClaim: obj({ claimName: str(), readOnly: bool }, ['claimName']) },
  ['name'],
);

const POD_SPEC_OTHER = [
  'affinity', 'automountServiceAccountToken', 'dnsConfig', 'dnsPolicy', 'enableServiceLinks', 'ephemeralContainers', 'hostAliases', 'hostIPC',
  'hostNetwork', 'hostPID', 'hostUsers', 'hostname', 'hostnameOverride', 'imagePullSecrets', 'nodeName', 'nodeSelector', 'os', 'overhead',
  'preemptionPolicy', 'priority', 'priorityClassName', 'readinessGates', 'resourceClaims', 'resources', 'restartPolicy', 'runtimeClassName',
  'schedulerName', 'schedulingGates', 'securityContext', 'serviceAccount', 'serviceAccountName', 'setHostnameAsFQDN', 'shareProcessNamespace',
  'subdomain', 'terminationGracePeriodSeconds', 'tolerations', 'topologySpreadConstraints', 'workloadRef',
];
const podSpec = obj(
  { ...Object.fromEntries(POD_SPEC_OTHER.map((k) => [k, any])), activeDeadlineSeconds: int64(), containers: arr(container, 1), initContainers: arr(container), volumes: arr(volume) },
  ['containers'],
);

const replicaSpec = obj(
  { replicas: int32(1), restartPolicy: str({ enum: ['Never', 'OnFailure'] }), template: obj({ metadata: objectMeta, spec: podSpec }, ['spec']) },
  ['template'],
);

export const MPIJOB_V2BETA1: Schema = obj(
  {
    apiVersion: str({ enum: ['kubeflow.org/v2beta1'] }),
    kind: str({ enum: ['MPIJob'] }),
    metadata: obj({ ...(objectMeta as { props: Record<string, Schema> }).props, name: str({ pattern: /^[a-z]([-a-z0-9]*[a-z0-9])?$/ }) }, ['name']),
    spec: obj(
      {
        launcherCreationPolicy: str({ enum: ['AtStartup', 'WaitForWorkersReady'] }),
        mpiImplementation: str({ enum: ['OpenMPI', 'Intel', 'MPICH'] }),
        mpiReplicaSpecs: obj({ Launcher: replicaSpec, Worker: replicaSpec }, ['Launcher']),
        runLauncherAsWorker: bool,
        runPolicy: obj(
          {
            activeDeadlineSeconds: int64(0), backoffLimit: int32(0), cleanPodPolicy: str({ enum: ['None', 'Running', 'All'] }),
            managedBy: str({ enum: ['kubeflow.org/mpi-operator', 'kueue.x-k8s.io/multikueue'] }),
            schedulingPolicy: obj({ minAvailable: int32(), minResources: map({ t: 'quantity' }), priorityClass: str(), queue: str(), scheduleTimeoutSeconds: int32() }),
            suspend: bool, ttlSecondsAfterFinished: int32(0),
          },
        ),
        slotsPerWorker: int32(0),
        sshAuthMountPath: str({ pattern: /^\/.+/ }),
      },
      ['mpiReplicaSpecs'],
    ),
  },
  ['apiVersion', 'kind', 'metadata', 'spec'],
);

/** Every violation of `schema` in `value`, each as "path: problem". */
export function validate(value: unknown, schema: Schema = MPIJOB_V2BETA1, path = ''): string[] {
  const at = path || '(root)';
  const kind = Array.isArray(value) ? 'array' : value === null ? 'null' : typeof value;
  switch (schema.t) {
    case 'any':
      return [];
    case 'string':
      if (typeof value !== 'string') return [`${at}: expected a string, got ${kind}`];
      if (schema.enum && !schema.enum.includes(value)) return [`${at}: '${value}' is not one of ${schema.enum.join(', ')}`];
      if (schema.pattern && !schema.pattern.test(value)) return [`${at}: '${value}' does not match ${schema.pattern}`];
      return [];
    case 'int': {
      const lim = schema.bits === 32 ? 2 ** 31 - 1 : Number.MAX_SAFE_INTEGER;
      if (typeof value !== 'number' || !Number.isInteger(value)) return [`${at}: expected an integer, got ${kind === 'string' ? `the string '${value}'` : kind}`];
      if (Math.abs(value) > lim) return [`${at}: ${value} does not fit int${schema.bits}`];
      if (schema.min !== undefined && value < schema.min) return [`${at}: ${value} is below ${schema.min}`];
      return [];
    }
    case 'bool':
      return typeof value === 'boolean' ? [] : [`${at}: expected true or false, got ${kind}`];
    case 'quantity':
      return (typeof value === 'number' && Number.isFinite(value)) || (typeof value === 'string' && QUANTITY.test(value)) ? [] : [`${at}: '${String(value)}' is not a Kubernetes quantity`];
    case 'array':
      if (!Array.isArray(value)) return [`${at}: expected a list, got ${kind}`];
      if (schema.minItems && value.length < schema.minItems) return [`${at}: needs at least ${schema.minItems} item(s)`];
      return value.flatMap((v, i) => validate(v, schema.items, `${path}[${i}]`));
    case 'map':
      if (kind !== 'object') return [`${at}: expected a mapping, got ${kind}`];
      return Object.entries(value as Record<string, unknown>).flatMap(([k, v]) => validate(v, schema.values, `${path}.${k}`));
    case 'object': {
      if (kind !== 'object') return [`${at}: expected a mapping, got ${kind}`];
      const o = value as Record<string, unknown>;
      const errs = (schema.required ?? []).filter((k) => o[k] === undefined).map((k) => `${path ? `${path}.` : ''}${k}: required`);
      for (const [k, v] of Object.entries(o)) {
        const sub = schema.props[k];
        if (!sub) errs.push(`${path ? `${path}.` : ''}${k}: unknown field (valid: ${Object.keys(schema.props).slice(0, 12).join(', ')}${Object.keys(schema.props).length > 12 ? ', …' : ''})`);
        else errs.push(...validate(v, sub, path ? `${path}.${k}` : k));
      }
      return errs;
    }
  }
}

/** The schema plus the operator's rules beyond field types: one launcher, at least one worker replica when workers are given. */
export function validateMPIJob(job: unknown): string[] {
  const errs = validate(job);
  const specs = (job as { spec?: { mpiReplicaSpecs?: Record<string, { replicas?: number } | undefined> } })?.spec?.mpiReplicaSpecs;
  const launcher = specs?.['Launcher'], worker = specs?.['Worker'];
  if (launcher && launcher.replicas !== undefined && launcher.replicas !== 1) errs.push(`spec.mpiReplicaSpecs.Launcher.replicas: must be 1, got ${launcher.replicas}`);
  if (worker && (worker.replicas ?? 0) < 1) errs.push(`spec.mpiReplicaSpecs.Worker.replicas: must be at least 1 (the operator defaults it to 0)`);
  return errs;
}
