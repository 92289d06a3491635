// Placeholder until the plugin lands: every verb but VERSION answers "not implemented".
import { CniError, ErrCode } from '../../cni/errors.ts';
import type { Plugin } from '../../cni/skel.ts';

const notYet = async (): Promise<never> => {
  throw new CniError(ErrCode.Internal, 'host-local: not implemented yet');
};

export const hostLocalPlugin: Plugin = { add: notYet, del: notYet, check: notYet };
