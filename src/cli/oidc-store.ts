/** One record of oidc-provider's storage: a model's payload, and when it expires. */
export interface Stored {
  payload: Record<string, unknown>
  /** Epoch milliseconds; null: never. */
  expiresAt: number | null
}

/**
 * oidc-provider's storage adapter over a Map of `model:id` to records: expired records are not found, and
 * `changed` (if given) runs after every write, to persist the Map (the dev provider writes it to a file).
 */
export function mapAdapter(store: Map<string, Stored>, changed = (): void => undefined): (model: string) => unknown {
  const live = (entry?: Stored) => (entry !== undefined && (entry.expiresAt ?? Infinity) > Date.now()
    ? entry.payload
    : undefined)
  return (model) => {
    const prefix = `${model}:`
    const findBy = (field: string, value: string) => {
      for (const [key, entry] of store) if (key.startsWith(prefix) && entry.payload[field] === value) return live(entry)
      return undefined
    }
    return {
      upsert: async (id: string, payload: Record<string, unknown>, expiresIn?: number) => {
        store.set(prefix + id, { payload, expiresAt: expiresIn === undefined ? null : Date.now() + expiresIn * 1000 })
        changed()
      },
      find: async (id: string) => live(store.get(prefix + id)),
      findByUid: async (uid: string) => findBy('uid', uid),
      findByUserCode: async (userCode: string) => findBy('userCode', userCode),
      consume: async (id: string) => {
        const entry = store.get(prefix + id)
        if (entry !== undefined) entry.payload.consumed = Math.floor(Date.now() / 1000)
        changed()
      },
      destroy: async (id: string) => {
        store.delete(prefix + id)
        changed()
      },
      revokeByGrantId: async (grantId: string) => {
        for (const [key, entry] of store) {
          if (key.startsWith(prefix) && entry.payload.grantId === grantId) store.delete(key)
        }
        changed()
      },
    }
  }
}
