import { SLOT_SIZE, RING_HEAD, RING_SLOTS, IF_RING_OFS } from '../../assembly/abi';

describe('abi', () => {
  it('keeps netmap_slot at 16 bytes', () => { expect(SLOT_SIZE).toBe(16); });
  it('puts ring head at 20 and slots at 256', () => { expect(RING_HEAD).toBe(20); expect(RING_SLOTS).toBe(256); });
  it('puts ring_ofs at 56 in netmap_if', () => { expect(IF_RING_OFS).toBe(56); });
});
